"""The subset of the X API v2 that tweepy's `Client` uses for posting.

Routes: `POST /2/tweets`, `DELETE /2/tweets/:id`, `GET /2/users/me`, `GET /2/users/:id/tweets`.
Every route needs OAuth 1.0a user context (`Authorization: OAuth ...`). When the sandbox is
given `x_accounts` (access token -> account), the token must be known and, if the account holds
`consumer_secret` and `access_token_secret`, the HMAC-SHA1 signature must verify; otherwise any
well-formed OAuth header is accepted and the user is derived from the access token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from .core import FaultRule, Incoming, Reply, iso, parse_time, utcnow

TWITTER_EPOCH_MS = 1288834974657
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"
NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"
# The hosts a client may have signed for; the signature base string names the real host.
SIGNED_BASES = ("https://api.twitter.com", "https://api.x.com")
REQUIRED_OAUTH = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature_method",
    "oauth_signature",
    "oauth_timestamp",
    "oauth_nonce",
)


def problem(status: int, title: str, detail: str | None = None, **extra: Any) -> Reply:
    body = {"title": title, "detail": detail or title, "type": "about:blank", "status": status}
    body.update(extra)
    return Reply(status, body)


def invalid(message: str, **parameters: list[str]) -> Reply:
    error: dict[str, Any] = {"message": message}
    if parameters:
        error["parameters"] = parameters
    return Reply(
        400,
        {
            "errors": [error],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": INVALID_REQUEST,
        },
    )


def _pct(value: str) -> str:
    return quote(value, safe="~")


def _oauth_header(value: str | None) -> dict[str, str] | None:
    if not value or not value.startswith("OAuth "):
        return None
    params: dict[str, str] = {}
    for part in value[len("OAuth ") :].split(","):
        key, sep, raw = part.strip().partition("=")
        if sep:
            params[unquote(key.strip())] = unquote(raw.strip().strip('"'))
    return params


def oauth_signature(
    method: str,
    base_url: str,
    params: list[tuple[str, str]],
    consumer_secret: str,
    token_secret: str,
) -> str:
    """RFC 5849 HMAC-SHA1 signature over the normalized request."""
    pairs = sorted((_pct(k), _pct(v)) for k, v in params)
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join((method.upper(), _pct(base_url), _pct(normalized)))
    key = f"{_pct(consumer_secret)}&{_pct(token_secret)}".encode()
    return base64.b64encode(hmac.new(key, base.encode(), hashlib.sha1).digest()).decode()


class XApi:
    provider = "x"

    def __init__(
        self,
        lock: threading.RLock,
        accounts: Mapping[str, Mapping[str, str]] | None = None,
        duplicate_window_s: float = 86_400,
    ) -> None:
        self._lock = lock
        self._accounts = dict(accounts) if accounts is not None else None
        self._duplicate_window = timedelta(seconds=duplicate_window_s)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._tweets: dict[str, dict[str, Any]] = {}
            self._last_id = 0

    # -- auth ---------------------------------------------------------------------------------

    def _authenticate(self, req: Incoming) -> dict[str, str] | Reply:
        oauth = _oauth_header(req.headers.get("Authorization"))
        if oauth is None or any(not oauth.get(name) for name in REQUIRED_OAUTH):
            return problem(401, "Unauthorized")
        token = oauth["oauth_token"]
        account: Mapping[str, str] = {}
        if self._accounts is not None:
            if token not in self._accounts:
                return problem(401, "Unauthorized")
            account = self._accounts[token]
            if (
                account.get("consumer_key")
                and account["consumer_key"] != oauth["oauth_consumer_key"]
            ):
                return problem(401, "Unauthorized")
            verify = account.get("consumer_secret") and account.get("access_token_secret")
            if verify and not self._signature_ok(req, oauth, account):
                return problem(401, "Unauthorized")
        return self._user(token, account)

    @staticmethod
    def _signature_ok(req: Incoming, oauth: dict[str, str], account: Mapping[str, str]) -> bool:
        if oauth.get("oauth_signature_method") != "HMAC-SHA1":
            return False
        params = [(k, v) for k, values in req.query.items() for v in values]
        params += [(k, v) for k, v in oauth.items() if k not in ("oauth_signature", "realm")]
        if req.form is not None:
            params += [(k, v) for k, values in req.form.items() for v in values]
        expected = oauth["oauth_signature"].encode()
        for base in SIGNED_BASES:
            signature = oauth_signature(
                req.method,
                base + req.path,
                params,
                account["consumer_secret"],
                account["access_token_secret"],
            )
            if hmac.compare_digest(signature.encode(), expected):
                return True
        return False

    @staticmethod
    def _user(token: str, account: Mapping[str, str]) -> dict[str, str]:
        user_id = account.get("id")
        if not user_id:
            prefix = token.split("-", 1)[0]
            if prefix.isdigit():
                user_id = prefix
            else:
                user_id = str(int(hashlib.sha256(token.encode()).hexdigest()[:15], 16))
        username = account.get("username") or f"sandbox{user_id[-6:]}"
        return {"id": user_id, "username": username, "name": account.get("name") or username}

    # -- routes -------------------------------------------------------------------------------

    def handle(self, req: Incoming) -> Reply:
        user = self._authenticate(req)
        if isinstance(user, Reply):
            return user
        parts = req.path.strip("/").split("/")
        if parts == ["2", "tweets"] and req.method == "POST":
            return self._create(req, user)
        if len(parts) == 3 and parts[:2] == ["2", "tweets"] and req.method == "DELETE":
            return self._delete(parts[2], user)
        if parts == ["2", "users", "me"] and req.method == "GET":
            return Reply(200, {"data": dict(user)})
        is_timeline = len(parts) == 4 and parts[:2] == ["2", "users"] and parts[3] == "tweets"
        if is_timeline and req.method == "GET":
            return self._timeline(req, parts[2])
        return problem(404, "Not Found Error", f"No route for {req.method} {req.path}")

    def _next_id(self) -> str:
        candidate = (int(time.time() * 1000) - TWITTER_EPOCH_MS) << 22
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

    def _create(self, req: Incoming, user: dict[str, str]) -> Reply:
        body = req.json
        if not isinstance(body, dict):
            return invalid("Request body must be a JSON object.")
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return invalid("Requires one of: text, media.media_ids, poll.options, quote_tweet_id.")
        reply_to = None
        if isinstance(body.get("reply"), dict):
            reply_to = str(body["reply"].get("in_reply_to_tweet_id") or "") or None
        now = utcnow()
        with self._lock:
            if reply_to is not None:
                parent = self._tweets.get(reply_to)
                if parent is None or parent["deleted"]:
                    return invalid(
                        "The Tweet you are replying to has been deleted or is not visible to you."
                    )
            for tweet in self._tweets.values():
                if (
                    tweet["author_id"] == user["id"]
                    and not tweet["deleted"]
                    and tweet["text"] == text
                    and now - tweet["_created"] < self._duplicate_window
                ):
                    return problem(403, "Forbidden", DUPLICATE)
            tweet_id = self._next_id()
            self._tweets[tweet_id] = {
                "id": tweet_id,
                "text": text,
                "author_id": user["id"],
                "username": user["username"],
                "created_at": _x_time(now),
                "in_reply_to_tweet_id": reply_to,
                "deleted": False,
                "deleted_at": None,
                "_created": now,
            }
        data = {"id": tweet_id, "text": text, "edit_history_tweet_ids": [tweet_id]}
        return Reply(201, {"data": data}, resource_id=tweet_id)

    def _delete(self, tweet_id: str, user: dict[str, str]) -> Reply:
        with self._lock:
            tweet = self._tweets.get(tweet_id)
            if tweet is None or tweet["deleted"]:
                return problem(
                    404,
                    "Not Found Error",
                    f"Could not find tweet with id: [{tweet_id}].",
                    type=NOT_FOUND,
                )
            if tweet["author_id"] != user["id"]:
                return problem(403, "Forbidden", "You are not allowed to delete this Tweet.")
            tweet["deleted"] = True
            tweet["deleted_at"] = iso(utcnow())
        return Reply(200, {"data": {"deleted": True}}, resource_id=tweet_id)

    def _timeline(self, req: Incoming, user_id: str) -> Reply:
        raw_max = req.arg("max_results") or "10"
        if not raw_max.isdigit() or not 5 <= int(raw_max) <= 100:
            return invalid(
                f"The `max_results` query parameter value [{raw_max}] is not between 5 and 100",
                max_results=[raw_max],
            )
        limit = int(raw_max)
        bounds: dict[str, datetime] = {}
        for name in ("start_time", "end_time"):
            value = req.arg(name)
            if value:
                try:
                    bounds[name] = parse_time(value)
                except ValueError:
                    return invalid(f"Invalid {name}: {value}", **{name: [value]})
        fields = set(filter(None, (req.arg("tweet.fields") or "").split(",")))
        token = req.arg("pagination_token") or "0"
        try:
            offset = int(token, 16)
        except ValueError:
            return invalid(f"Invalid pagination_token: {token}", pagination_token=[token])
        with self._lock:
            tweets = [
                t
                for t in self._tweets.values()
                if t["author_id"] == user_id
                and not t["deleted"]
                and ("start_time" not in bounds or t["_created"] >= bounds["start_time"])
                and ("end_time" not in bounds or t["_created"] < bounds["end_time"])
            ]
            tweets.sort(key=lambda t: int(t["id"]), reverse=True)
            window = tweets[offset : offset + limit]
            data = [self._render(t, fields) for t in window]
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta["newest_id"] = data[0]["id"]
            meta["oldest_id"] = data[-1]["id"]
        if offset + limit < len(tweets):
            meta["next_token"] = format(offset + limit, "x")
        body: dict[str, Any] = {"meta": meta}
        if data:
            body["data"] = data
        return Reply(200, body)

    @staticmethod
    def _render(tweet: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": tweet["id"],
            "text": tweet["text"],
            "edit_history_tweet_ids": [tweet["id"]],
        }
        if "created_at" in fields:
            out["created_at"] = tweet["created_at"]
        if "author_id" in fields:
            out["author_id"] = tweet["author_id"]
        if "referenced_tweets" in fields and tweet["in_reply_to_tweet_id"]:
            out["referenced_tweets"] = [{"type": "replied_to", "id": tweet["in_reply_to_tweet_id"]}]
        return out

    # -- faults and inspection ----------------------------------------------------------------

    def fault_reply(self, rule: FaultRule) -> Reply:
        if rule.fault == "rate_limit":
            reset = int(time.time()) + rule.retry_after_s
            reply = problem(429, "Too Many Requests")
            reply.headers.update(
                {
                    "x-rate-limit-limit": "200",
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(reset),
                }
            )
            return reply
        status = rule.status or 503
        title = _REASONS.get(status, "Error")
        return problem(status, title, rule.message or title)

    def count(self) -> int:
        """How many posts there are (deleted ones included), without copying them."""
        with self._lock:
            return len(self._tweets)

    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {k: v for k, v in t.items() if not k.startswith("_")}
                for t in sorted(self._tweets.values(), key=lambda t: int(t["id"]))
            ]


def _x_time(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
