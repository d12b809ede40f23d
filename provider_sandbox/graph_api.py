"""The subset of the Facebook Graph API that facebook-sdk's `GraphAPI` uses for page posts.

Routes (any `/vN.M` version prefix): `POST /{page_id}/feed` (`message`, `link`),
`GET /{page_id}/feed` (`since`, `until`, `limit`, `after`), `GET /{post_id}`, `DELETE /{post_id}`.
Every route needs an `access_token` (query or form). When the sandbox is given
`facebook_page_tokens` (token -> page id), an unknown token is an OAuthException (code 190) and a
token for another page is a permission error (code 200); otherwise any token is accepted for any
page.
"""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from .core import FaultRule, Incoming, Reply, iso, parse_time, utcnow

VERSION_RE = re.compile(r"^v\d+\.\d+$")
GRAPH_URL = "https://graph.facebook.com"


def graph_error(
    status: int,
    message: str,
    code: int,
    type_: str = "OAuthException",
    *,
    subcode: int | None = None,
    transient: bool | None = None,
) -> Reply:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    error["fbtrace_id"] = base64.b64encode(secrets.token_bytes(8)).decode().rstrip("=")
    return Reply(status, {"error": error})


def _unsupported(method: str, object_id: str) -> Reply:
    verb = {"GET": "get", "POST": "post", "DELETE": "delete"}.get(method, method.lower())
    return graph_error(
        400,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        100,
        "GraphMethodException",
        subcode=33,
    )


class GraphApi:
    provider = "facebook"

    def __init__(self, lock: threading.RLock, page_tokens: Mapping[str, str] | None = None):
        self._lock = lock
        self._page_tokens = dict(page_tokens) if page_tokens is not None else None
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._posts: dict[str, dict[str, Any]] = {}
            self._counter = 10**15 + secrets.randbelow(10**14)

    def handle(self, req: Incoming) -> Reply:
        parts = req.path.strip("/").split("/")
        version = parts[0]
        if not VERSION_RE.match(version):
            return graph_error(400, f"Unknown path components: /{version}", 2500)
        token = req.arg("access_token")
        if not token:
            return graph_error(400, "An access token is required to request this resource.", 104)
        objects = parts[1:]
        reply = self._route(req, version, objects, token)
        reply.headers.setdefault("facebook-api-version", version)
        return reply

    def _route(self, req: Incoming, version: str, objects: list[str], token: str) -> Reply:
        if len(objects) == 2 and objects[1] == "feed":
            page_id = objects[0]
            denied = self._authorize(token, page_id)
            if denied:
                return denied
            if req.method == "POST":
                return self._publish(req, page_id)
            if req.method == "GET":
                return self._feed(req, version, page_id, token)
        if len(objects) == 1 and objects[0]:
            post_id = objects[0]
            page_id = post_id.split("_", 1)[0]
            denied = self._authorize(token, page_id)
            if denied:
                return denied
            if req.method == "DELETE":
                return self._delete(post_id)
            if req.method == "GET":
                return self._get(post_id)
        return _unsupported(req.method, "/".join(objects))

    def _authorize(self, token: str, page_id: str) -> Reply | None:
        if self._page_tokens is None:
            return None
        owner = self._page_tokens.get(token)
        if owner is None:
            return graph_error(400, "Invalid OAuth access token - Cannot parse access token", 190)
        if owner != page_id:
            return graph_error(
                403,
                "(#200) The user hasn't authorized the application to perform this action",
                200,
            )
        return None

    def _publish(self, req: Incoming, page_id: str) -> Reply:
        message = req.field("message") or req.arg("message")
        if not message:
            return graph_error(400, "(#100) Missing message or attachment.", 100)
        now = utcnow()
        with self._lock:
            self._counter += 1 + secrets.randbelow(1000)
            post_id = f"{page_id}_{self._counter}"
            self._posts[post_id] = {
                "id": post_id,
                "page_id": page_id,
                "message": message,
                "link": req.field("link") or req.arg("link"),
                "created_time": _fb_time(now),
                "deleted": False,
                "deleted_at": None,
                "_created": now,
                "_order": self._counter,
            }
        return Reply(200, {"id": post_id}, resource_id=post_id)

    def _delete(self, post_id: str) -> Reply:
        with self._lock:
            post = self._posts.get(post_id)
            if post is None or post["deleted"]:
                return _unsupported("DELETE", post_id)
            post["deleted"] = True
            post["deleted_at"] = iso(utcnow())
        return Reply(200, {"success": True}, resource_id=post_id)

    def _get(self, post_id: str) -> Reply:
        with self._lock:
            post = self._posts.get(post_id)
            if post is None or post["deleted"]:
                return _unsupported("GET", post_id)
            return Reply(200, _render(post))

    def _feed(self, req: Incoming, version: str, page_id: str, token: str) -> Reply:
        try:
            limit = int(req.arg("limit") or "25")
            since = _graph_time(req.arg("since"))
            until = _graph_time(req.arg("until"))
            offset = int(base64.urlsafe_b64decode((req.arg("after") or "MA==").encode()))
        except ValueError as exc:
            return graph_error(400, f"(#100) Invalid parameter: {exc}", 100)
        limit = max(1, min(limit, 100))
        with self._lock:
            posts = [
                p
                for p in self._posts.values()
                if p["page_id"] == page_id
                and not p["deleted"]
                and (since is None or p["_created"] >= since)
                and (until is None or p["_created"] <= until)
            ]
            posts.sort(key=lambda p: p["_order"], reverse=True)
            window = posts[offset : offset + limit]
            data = [_render(p) for p in window]
        body: dict[str, Any] = {"data": data}
        if data:
            before = base64.urlsafe_b64encode(str(offset).encode()).decode()
            after = base64.urlsafe_b64encode(str(offset + len(data)).encode()).decode()
            paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
            if offset + limit < len(posts):
                args = {k: v[0] for k, v in req.query.items() if k != "after"}
                args.update({"access_token": token, "limit": str(limit), "after": after})
                paging["next"] = f"{GRAPH_URL}/{version}/{page_id}/feed?{urlencode(args)}"
            body["paging"] = paging
        return Reply(200, body)

    def fault_reply(self, rule: FaultRule) -> Reply:
        if rule.fault == "rate_limit":
            code = rule.code if rule.code is not None else 32
            message = rule.message or _THROTTLE_MESSAGES.get(code, "(#4) Request limit reached")
            status = rule.http_status or (403 if code == 4 else 400)
            reply = graph_error(status, message, code, transient=True if code == 4 else None)
            minutes = max(1, math.ceil(rule.retry_after_s / 60))
            usage = {
                "type": "pages",
                "call_count": 100,
                "total_cputime": 100,
                "total_time": 100,
                "estimated_time_to_regain_access": minutes,
            }
            reply.headers["X-Business-Use-Case-Usage"] = _json({"sandbox": [usage]})
            reply.headers["X-App-Usage"] = _json(
                {"call_count": 100, "total_cputime": 100, "total_time": 100}
            )
            return reply
        status = rule.status or 500
        if rule.code is not None:
            return graph_error(status, rule.message or "(#1) An unknown error occurred", rule.code)
        if status >= 500:
            return graph_error(
                status,
                rule.message
                or "An unexpected error has occurred. Please retry your request later.",
                2,
                transient=True,
            )
        return graph_error(status, rule.message or "(#100) Invalid parameter", 100)

    def count(self) -> int:
        """How many posts there are (deleted ones included), without copying them."""
        with self._lock:
            return len(self._posts)

    def posts(self) -> list[dict[str, Any]]:
        with self._lock:
            ordered = sorted(self._posts.values(), key=lambda p: p["_order"])
            return [{k: v for k, v in p.items() if not k.startswith("_")} for p in ordered]


_THROTTLE_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "There have been too many calls to this Page account. Wait a bit and try again.",
}


def _render(post: dict[str, Any]) -> dict[str, Any]:
    rendered = {"id": post["id"], "message": post["message"], "created_time": post["created_time"]}
    if post.get("link"):
        rendered["link"] = post["link"]
    return rendered


def _fb_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _graph_time(value: str | None) -> datetime | None:
    """Graph accepts a Unix timestamp or a strtotime()-style date for since/until."""
    if not value:
        return None
    if value.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    return parse_time(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
