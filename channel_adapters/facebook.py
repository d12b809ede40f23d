"""Facebook Page posts through facebook-sdk's `GraphAPI`.

settings: `page_id`, `graph_version` (default "v21.0")
credentials: `page_access_token`
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import facebook
import requests

from . import AccountConfig, DeliveryError, Outcome, Receipt, register
from .transport import mount_for, network_error, one_line, retry_after_from

DEFAULT_GRAPH_VERSION = "v21.0"
_VERSION = re.compile(r"^v?(\d+\.\d+)$")
# Graph's throttling codes: app (4), user (17), page (32), API-specific (613), page BUC (80001).
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001})
TRANSIENT_CODES = frozenset({1, 2})  # "unknown error", "service temporarily unavailable"
DUPLICATE_POST = 506  # "Duplicate status message": the same text is already on the page
_LOOKUP_PAGES = 5


class PageGraph(facebook.GraphAPI):
    """`GraphAPI` for a current Graph version.

    facebook-sdk 3.1.0 (2018) checks the `version` argument of its constructor against a list
    that ends at 3.1 and raises for anything newer. The version is otherwise only the instance
    attribute `self.version` ("vX.Y"), which every method puts in front of the path. So this
    subclass calls the unmodified constructor without a version (it accepts that and sets its
    default), then sets the attribute to the version we need. No library function is patched or
    replaced; the SDK's request code runs as shipped.
    """

    def __init__(
        self,
        access_token: str,
        *,
        version: str,
        timeout: float,
        session: requests.Session,
    ) -> None:
        super().__init__(access_token=access_token, timeout=timeout, session=session)
        self.version = normalize_version(version)


def normalize_version(version: str) -> str:
    match = _VERSION.match(version.strip())
    if not match:
        raise ValueError(f"graph_version must look like 'v21.0', got {version!r}")
    return f"v{match.group(1)}"


@register
class FacebookAdapter:
    channel = "facebook"

    def __init__(self, account: AccountConfig) -> None:
        token = account.credentials.get("page_access_token")
        if not token:
            raise ValueError(f"Facebook account {account.name!r}: missing page_access_token")
        page_id = account.settings.get("page_id")
        if not page_id:
            raise ValueError(f"Facebook account {account.name!r}: missing setting page_id")
        self.account = account
        self.page_id = page_id
        session = requests.Session()
        self._transport = mount_for(session, account)
        self._graph = PageGraph(
            token,
            version=account.settings.get("graph_version") or DEFAULT_GRAPH_VERSION,
            timeout=account.timeout_s,
            session=session,
        )
        self._secrets = account.secrets()

    @property
    def graph_version(self) -> str:
        return self._graph.version

    # -- the contract ---------------------------------------------------------------------------

    def send(
        self,
        text: str,
        *,
        to: str | None = None,
        reply_to: str | None = None,
        valid_for_s: int | None = None,
    ) -> Receipt:
        # A page post has no replies: an update links to the post it follows instead.
        extra = {"link": f"https://www.facebook.com/{reply_to}"} if reply_to else {}
        try:
            result = self._graph.put_object(self.page_id, "feed", message=text, **extra)
        except Exception as exc:
            raise self._error(exc, idempotent=False) from None
        post_id = str(result["id"])
        return Receipt(post_id, f"https://www.facebook.com/{post_id}", dict(result))

    def lookup(self, text: str, *, to: str | None = None, since: datetime) -> Receipt | None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        args: dict[str, Any] = {
            "fields": "id,message,created_time",
            "since": int(since.timestamp()),
            "limit": 100,
        }
        found: dict[str, Any] | None = None
        try:
            for _ in range(_LOOKUP_PAGES):
                page = self._graph.get_connections(self.page_id, "feed", **args)
                for post in page.get("data", []):  # newest first: keep the oldest match
                    if post.get("message") == text:
                        found = post
                after = page.get("paging", {}).get("cursors", {}).get("after")
                if found or not page.get("paging", {}).get("next") or not after:
                    break
                args["after"] = after
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None
        if found is None:
            return None
        post_id = str(found["id"])
        return Receipt(post_id, f"https://www.facebook.com/{post_id}", found)

    def retract(self, receipt: Receipt) -> None:
        try:
            self._graph.delete_object(receipt.provider_id)
        except facebook.GraphAPIError as exc:
            error = _graph_error_body(exc)
            if error.get("code") == 100 and error.get("error_subcode") == 33:
                return  # does not exist (any more): a retried delete whose first answer was lost
            raise self._error(exc, idempotent=True) from None
        except Exception as exc:
            raise self._error(exc, idempotent=True) from None

    # -- errors -----------------------------------------------------------------------------------

    def _error(self, exc: Exception, *, idempotent: bool) -> DeliveryError:
        net = network_error(exc, channel="facebook", idempotent=idempotent, secrets=self._secrets)
        if net is not None:
            return net
        # facebook-sdk raises GraphAPIError from the body alone; the HTTP status and headers
        # come from the transport, which saw the response.
        status = self._transport.last_status
        body = self._transport.last_body()
        raw = {"http_status": status, "body": body}
        after_send = Outcome.RETRYABLE if idempotent else Outcome.AMBIGUOUS
        if not isinstance(exc, facebook.GraphAPIError):
            detail = one_line(f"facebook: unexpected {type(exc).__name__}", self._secrets)
            if status is not None and (status >= 500 or status == 429):
                return DeliveryError(Outcome.RETRYABLE, detail, raw=raw)
            return DeliveryError(after_send, detail, raw=raw)
        error = _graph_error_body(exc)
        code = error.get("code")
        kind = error.get("type") or ""
        message = error.get("message") or str(exc)
        label = f"code {code} {kind}".strip() if code is not None else kind or "error"
        detail = one_line(f"facebook: HTTP {status} {label}: {message}", self._secrets)
        if code in THROTTLE_CODES or status == 429:
            return DeliveryError(
                Outcome.RETRYABLE, detail, retry_after=self._retry_after(), raw=raw
            )
        if (status or 0) >= 500 or error.get("is_transient") or code in TRANSIENT_CODES:
            return DeliveryError(Outcome.RETRYABLE, detail, raw=raw)
        if code == DUPLICATE_POST and not idempotent:
            return DeliveryError(
                Outcome.AMBIGUOUS,
                one_line(f"{detail} (an identical post exists: look it up)", self._secrets),
                raw=raw,
            )
        if status is None and not error:
            # Not an answer from Graph at all (e.g. a response without a content type).
            return DeliveryError(after_send, detail, raw=raw)
        # OAuthException (190 bad token, 10/200-299 permissions), 100 bad parameter, 368 policy.
        return DeliveryError(Outcome.PERMANENT, detail, raw=raw)

    def _retry_after(self) -> float | None:
        """Seconds until Graph lets this app/page call again, from its usage headers."""
        minutes: list[float] = []
        for name in ("X-Business-Use-Case-Usage", "X-Page-Usage", "X-App-Usage"):
            value = self._transport.last_header(name)
            if value:
                minutes.extend(_regain_minutes(value))
        if minutes:
            return max(minutes) * 60
        return retry_after_from(self._transport.last_header("Retry-After"))


def _graph_error_body(exc: facebook.GraphAPIError) -> dict[str, Any]:
    result = exc.result
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        return result["error"]
    return {}


def _regain_minutes(header: str) -> list[float]:
    try:
        value = json.loads(header)
    except ValueError:
        return []
    found: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            minutes = node.get("estimated_time_to_regain_access")
            if isinstance(minutes, int | float):
                found.append(float(minutes))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return found
