"""What the Twilio adapters (texts, calls) share: the SDK client on a mounted session, error
classification, and reading Twilio's dates."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from . import AccountConfig, DeliveryError, Outcome
from .transport import ProviderTransport, mount_for, network_error, one_line, retry_after_from


def client(
    account: AccountConfig, account_sid: str, token: str
) -> tuple[Client, ProviderTransport]:
    """The SDK's own HTTP client and session, with the transport mounted on that session."""
    http = TwilioHttpClient(timeout=account.timeout_s)
    assert http.session is not None  # noqa: S101 (the SDK always makes one; narrows the type)
    transport = mount_for(http.session, account)
    sdk = Client(username=account_sid, password=token, account_sid=account_sid, http_client=http)
    return sdk, transport


def classify(
    exc: Exception,
    transport: ProviderTransport,
    *,
    channel: str,
    secrets: tuple[str, ...],
    idempotent: bool,
) -> DeliveryError:
    """A Twilio call's failure as a DeliveryError: 429 retry after its Retry-After, 5xx and 408
    retry, other 4xx (bad number, authentication, not found) permanent; a failure that may
    have come after Twilio acted is ambiguous unless the call was idempotent."""
    net = network_error(exc, channel=channel, idempotent=idempotent, secrets=secrets)
    if net is not None:
        return net
    status = getattr(exc, "status", None) or transport.last_status
    body = transport.last_body()
    raw = {"http_status": status, "body": body}
    after_send = Outcome.RETRYABLE if idempotent else Outcome.AMBIGUOUS
    if not isinstance(exc, TwilioException) or status is None:
        detail = one_line(f"{channel}: unexpected {type(exc).__name__}", secrets)
        return DeliveryError(after_send, detail, raw=raw)
    code = body.get("code") if isinstance(body, dict) else getattr(exc, "code", None)
    message = body.get("message") if isinstance(body, dict) else None
    message = message or getattr(exc, "msg", "") or str(status)
    label = f"HTTP {status} code {code}" if code else f"HTTP {status}"
    detail = one_line(f"{channel}: {label}: {message}", secrets)
    if status == 429 or code == 20429:
        retry_after = retry_after_from(transport.last_header("Retry-After"))
        return DeliveryError(Outcome.RETRYABLE, detail, retry_after=retry_after, raw=raw)
    if status >= 500 or status == 408:
        return DeliveryError(Outcome.RETRYABLE, detail, raw=raw)
    if 400 <= status < 500:
        return DeliveryError(Outcome.PERMANENT, detail, raw=raw)
    return DeliveryError(after_send, detail, raw=raw)


def floor(since: datetime) -> datetime:
    """`since` comparable with Twilio's dates (RFC 2822: UTC, whole seconds)."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since.replace(microsecond=0)


def created(item: dict[str, Any]) -> datetime | None:
    value = item.get("date_created")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
