"""Channel adapters: one module per channel (X, Facebook, SMS, voice, e-mail, web, staff chat
through Apprise), registered here.

Adapters depend on nothing in `broadcaster/`; the broadcaster reaches them only through this
registry. What an adapter needs of the broadcaster comes in through its `AccountConfig`: the web
adapter publishes through an `AlertStore` the broadcaster provides, and never sees its database.

An adapter is built per account and per thread (`adapter_for(channel)(account)` or
`build(account)`): each instance owns one SDK client and its `requests` session, which are not
documented as thread-safe. Every provider failure surfaces as a `DeliveryError` whose outcome
tells the caller what to do next:

- RETRYABLE: nothing was published (429 with `retry_after`, 5xx, connection refused, DNS, a
  connect timeout); try again later.
- PERMANENT: the provider refused for good (bad number, bad credentials, a policy error); do not
  try again. `raw` holds the provider's error.
- AMBIGUOUS: the request may have been acted on (read timeout or connection dropped after the
  request was sent; X "duplicate content"): call `lookup` before any resend.

`detail` is one line and never contains a credential.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol


@dataclass(frozen=True)
class Receipt:
    """What the provider said when it accepted a post or a text."""

    provider_id: str
    url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class AlertStoreUnavailable(Exception):
    """The alert store cannot be reached (its database is down): nothing was changed."""


class AlertStore(Protocol):
    """The web channel's published alerts, kept by the broadcaster (its public pages and feeds
    serve them). `publish` and `withdraw` raise AlertStoreUnavailable when the store cannot be
    reached."""

    def publish(
        self, account: str, body: str, reply_to: str | None, expires_at: datetime | None
    ) -> str:
        """Publish `body` now (as a correction of the alert `reply_to`, if given); returns the
        new alert's id."""
        ...

    def find(self, account: str, body: str, since: datetime) -> str | None:
        """The id of an alert of this account with exactly this body published at or after
        `since`, if any."""
        ...

    def withdraw(self, alert_id: str) -> None:
        """Mark the alert withdrawn now; one already withdrawn keeps its first withdrawal time."""
        ...


@dataclass(frozen=True)
class AccountConfig:
    """One provider account, as an adapter needs it.

    `settings` are not secret (X `user_id`, `username`; Facebook `page_id`, `graph_version`;
    SMS `account_sid`, `messaging_service_sid` or `from_number`, `status_callback`).
    `credentials` are secret (X `consumer_key`, `consumer_secret`, `access_token`,
    `access_token_secret`; Facebook `page_access_token`; SMS `auth_token`; e-mail `username`,
    `password`, `dkim_private_key`) and are kept out of the repr. With `sandbox_url` set, the
    SDK's own session sends the provider's hosts there and nowhere else (the e-mail adapter asks
    the sandbox where its SMTP server listens). With `api_base_url` set instead, it sends them to
    that host (a regional API host, an egress proxy) with the account's real credentials: not a
    sandbox.
    `alert_store` is where a web account publishes (the web channel has no provider).
    """

    name: str
    channel: str
    settings: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)
    sandbox_url: str | None = None
    api_base_url: str | None = None
    timeout_s: float = 10.0
    alert_store: AlertStore | None = None

    def secrets(self) -> tuple[str, ...]:
        """The credential values, for scrubbing them out of any text."""
        return tuple(v for v in self.credentials.values() if v)


class Outcome(Enum):
    RETRYABLE = "retryable"  # 429, 5xx, connection refused: try again later
    PERMANENT = "permanent"  # bad number, bad credentials: do not try again
    AMBIGUOUS = "ambiguous"  # the request may have arrived: look it up before any resend


class DeliveryError(Exception):
    """A provider call failed. `raw` is the provider's error (HTTP status and body) if any."""

    def __init__(
        self,
        outcome: Outcome,
        detail: str,
        retry_after: float | None = None,
        raw: Any = None,
    ):
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.retry_after = retry_after
        self.raw = raw


class Adapter(Protocol):
    channel: str

    def __init__(self, account: AccountConfig) -> None: ...

    def send(
        self,
        text: str,
        *,
        to: str | None = None,
        reply_to: str | None = None,
        valid_for_s: int | None = None,
    ) -> Receipt:
        """Publish `text` (to the E.164 number `to` for SMS, the address `to` for e-mail; as a
        reply to the provider id `reply_to` where the channel has replies; valid for
        `valid_for_s` seconds for SMS). The e-mail adapter also takes optional keywords of its
        own (`subject`, `html`, `routine`, `message_id`; see channel_adapters.email)."""
        ...

    def lookup(self, text: str, *, to: str | None = None, since: datetime) -> Receipt | None:
        """The post or message with exactly this text (and recipient) created at or after
        `since`, if any: used to reconcile an AMBIGUOUS send before any resend."""
        ...

    def retract(self, receipt: Receipt) -> None:
        """Take a post down (PERMANENT DeliveryError where the channel cannot)."""
        ...


REGISTRY: dict[str, type[Adapter]] = {}

# Built-in adapters, imported on first use so that importing this package stays cheap.
_BUILTIN = {
    "x": "channel_adapters.x",
    "facebook": "channel_adapters.facebook",
    "sms": "channel_adapters.sms",
    "web": "channel_adapters.web",
    "voice": "channel_adapters.voice",
    "email": "channel_adapters.email",
    "apprise": "channel_adapters.apprise_staff",
}


def register(adapter: type[Adapter]) -> type[Adapter]:
    REGISTRY[adapter.channel] = adapter
    return adapter


def adapter_for(channel: str) -> type[Adapter]:
    if channel not in REGISTRY and channel in _BUILTIN:
        try:
            importlib.import_module(_BUILTIN[channel])
        except ModuleNotFoundError as exc:
            if exc.name != _BUILTIN[channel]:
                raise
    try:
        return REGISTRY[channel]
    except KeyError:
        raise LookupError(f"no adapter registered for channel {channel!r}") from None


def build(account: AccountConfig) -> Adapter:
    """A new adapter (with its own SDK client) for this account."""
    return adapter_for(account.channel)(account)
