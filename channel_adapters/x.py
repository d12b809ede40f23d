"""X (Twitter) through tweepy's API v2 `Client`, OAuth 1.0a user context.

settings: `username` (optional; for receipt URLs without a network call), `user_id` (optional,
informational)
credentials: `consumer_key`, `consumer_secret`, `access_token`, `access_token_secret`

Lookups search the timeline of the user the access token belongs to (`get_me`, asked once per
adapter), not the configured `user_id`: the token decides where posts go, and a stale or mistyped
`user_id` would make reconciliation miss a post that exists and cause a duplicate send.
"""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime
from typing import Any

import tweepy

from . import AccountConfig, DeliveryError, Outcome, Receipt, register
from .transport import mount_for, network_error, one_line

CREDENTIALS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
DUPLICATE_MARKER = "duplicate content"
_URL = re.compile(r"https?://\S+")
_LOOKUP_PAGES = 5


def _comparable(text: str) -> str:
    """X returns text with &amp;-style entities and links rewritten to t.co: compare modulo both."""
    return _URL.sub("<url>", html.unescape(text)).strip()


@register
class XAdapter:
    channel = "x"

    def __init__(self, account: AccountConfig) -> None:
        missing = [k for k in CREDENTIALS if not account.credentials.get(k)]
        if missing:
            raise ValueError(f"X account {account.name!r}: missing credentials {missing}")
        self.account = account
        creds = account.credentials
        # wait_on_rate_limit=False: tweepy would otherwise sleep inside the worker on a 429.
        self._client = tweepy.Client(
            consumer_key=creds["consumer_key"],
            consumer_secret=creds["consumer_secret"],
            access_token=creds["access_token"],
            access_token_secret=creds["access_token_secret"],
            wait_on_rate_limit=False,
        )
        self._transport = mount_for(self._client.session, account)
        self._secrets = account.secrets()
        self._username = account.settings.get("username") or None
        self._me_cache: tuple[str, str] | None = None  # (id, username) of the token's user

    # -- the contract ---------------------------------------------------------------------------

    def send(
        self,
        text: str,
        *,
        to: str | None = None,
        reply_to: str | None = None,
        valid_for_s: int | None = None,
    ) -> Receipt:
        try:
            response = self._client.create_tweet(
                text=text, in_reply_to_tweet_id=reply_to, user_auth=True
            )
        except Exception as exc:
            raise self._error(exc, idempotent=False) from None
        raw = self._transport.last_body()
        data = response.data or {}
        tweet_id = str(data["id"])
        return Receipt(tweet_id, self._url(tweet_id), raw if isinstance(raw, dict) else {})

    def lookup(self, text: str, *, to: str | None = None, since: datetime) -> Receipt | None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        wanted = _comparable(text)
        try:
            user_id = self._me()[0]  # the token's own user, whatever the settings say
            token = None
            found: dict[str, Any] | None = None
            for _ in range(_LOOKUP_PAGES):
                page = self._client.get_users_tweets(
                    user_id,
                    start_time=since.replace(microsecond=0),
                    max_results=100,
                    tweet_fields=["created_at"],
                    pagination_token=token,
                    user_auth=True,
                )
                for tweet in page.data or []:  # newest first: keep the oldest match
                    if _comparable(tweet.text) == wanted:
                        found = dict(tweet.data)
                token = (page.meta or {}).get("next_token")
                if found or not token:
                    break
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None
        if found is None:
            return None
        return Receipt(str(found["id"]), self._url(str(found["id"])), found)

    def retract(self, receipt: Receipt) -> None:
        try:
            self._client.delete_tweet(receipt.provider_id, user_auth=True)
        except tweepy.NotFound:
            return  # already gone (e.g. a retried delete whose first answer was lost)
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None

    # -- helpers ----------------------------------------------------------------------------------

    def _me(self) -> tuple[str, str]:
        """(id, username) of the user the access token belongs to, asked once."""
        if self._me_cache is None:
            me = self._client.get_me(user_auth=True).data
            self._me_cache = (str(me.id), str(me.username))
        return self._me_cache

    def _url(self, tweet_id: str) -> str:
        username = self._username
        if username is None:
            try:
                username = self._me()[1]
            except Exception:  # the post exists; a failed profile lookup must not hide that
                return f"https://x.com/i/web/status/{tweet_id}"
        return f"https://x.com/{username}/status/{tweet_id}"

    def _error(self, exc: Exception, *, idempotent: bool) -> DeliveryError:
        net = network_error(exc, channel="x", idempotent=idempotent, secrets=self._secrets)
        if net is not None:
            return net
        if not isinstance(exc, tweepy.HTTPException):
            # A garbled answer: the provider saw the request, so a send may have happened.
            outcome = Outcome.RETRYABLE if idempotent else Outcome.AMBIGUOUS
            detail = one_line(f"x: unexpected {type(exc).__name__}: {exc}", self._secrets)
            return DeliveryError(outcome, detail, raw={"exception": type(exc).__name__})
        response = exc.response
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:2000]
        raw = {"http_status": status, "body": body}
        messages = "; ".join(str(m) for m in exc.api_messages) or response.reason or ""
        detail = one_line(f"x: HTTP {status}: {messages}", self._secrets)
        if isinstance(exc, tweepy.TooManyRequests):
            retry_after = None
            if exc.reset_time is not None:
                retry_after = max(0.0, exc.reset_time - time.time())
            return DeliveryError(Outcome.RETRYABLE, detail, retry_after=retry_after, raw=raw)
        if isinstance(exc, tweepy.TwitterServerError) or status in (408, 429):
            return DeliveryError(Outcome.RETRYABLE, detail, raw=raw)
        if status == 403 and DUPLICATE_MARKER in messages.lower() and not idempotent:
            # X refuses an identical recent post: on a resend this means the first one most
            # likely went out. Let the caller look it up rather than give up or resend.
            return DeliveryError(
                Outcome.AMBIGUOUS,
                one_line(f"{detail} (an identical post exists: look it up)", self._secrets),
                raw=raw,
            )
        return DeliveryError(Outcome.PERMANENT, detail, raw=raw)
