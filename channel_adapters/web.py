"""The district web site: publishes to the broadcaster's alert store (`AccountConfig.alert_store`,
see `AlertStore`), which the public pages and feeds serve.

Settings: optional `base_url` for the alert's URL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from channel_adapters import (
    AccountConfig,
    AlertStoreUnavailable,
    DeliveryError,
    Outcome,
    Receipt,
    register,
)


@contextmanager
def _reachable() -> Iterator[None]:
    """A store that cannot be reached changed nothing: try again later."""
    try:
        yield
    except AlertStoreUnavailable as exc:
        raise DeliveryError(Outcome.RETRYABLE, f"alert store unavailable: {exc}") from None


@register
class WebAdapter:
    channel = "web"

    def __init__(self, account: AccountConfig):
        if account.alert_store is None:
            raise ValueError(f"web account {account.name} has no alert store")
        self.account = account
        self.store = account.alert_store
        self.base_url = account.settings.get("base_url", "").rstrip("/")

    def _receipt(self, alert_id: str) -> Receipt:
        url = f"{self.base_url}/alerts/{alert_id}" if self.base_url else None
        return Receipt(alert_id, url, {"id": alert_id, "account": self.account.name})

    def send(
        self,
        text: str,
        *,
        to: str | None = None,
        reply_to: str | None = None,
        valid_for_s: int | None = None,
    ) -> Receipt:
        now = dt.datetime.now(dt.UTC)
        expires = now + dt.timedelta(seconds=valid_for_s) if valid_for_s else None
        with _reachable():
            alert_id = self.store.publish(self.account.name, text, reply_to, expires)
        return self._receipt(alert_id)

    def lookup(self, text: str, *, to: str | None = None, since: dt.datetime) -> Receipt | None:
        found = self.store.find(self.account.name, text, since)
        return self._receipt(found) if found else None

    def retract(self, receipt: Receipt) -> None:
        """Mark the alert withdrawn (its CAP becomes a Cancel); one already withdrawn keeps its
        first withdrawal time."""
        with _reachable():
            self.store.withdraw(receipt.provider_id)
