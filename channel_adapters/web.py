"""The district web site: publishes to the broadcaster's own alert store, which the public pages
and feeds serve. The store is one table, defined here and created by the broadcaster's migrations.

Settings: `database_url` (the broadcaster's database), optional `base_url` for the alert's URL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import cache

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.exc import OperationalError

from channel_adapters import AccountConfig, DeliveryError, Outcome, Receipt, register

metadata = MetaData()
web_alerts = Table(
    "web_alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("reply_to", String(40)),
    Column("published_at", DateTime(timezone=True), nullable=False, index=True),
    Column("expires_at", DateTime(timezone=True)),
    Column("retracted_at", DateTime(timezone=True)),
)


@cache
def _engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True)


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


@register
class WebAdapter:
    channel = "web"

    def __init__(self, account: AccountConfig):
        self.account = account
        self.engine = _engine(account.settings["database_url"])
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
        alert_id = uuid.uuid4().hex
        expires = now + dt.timedelta(seconds=valid_for_s) if valid_for_s else None
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(web_alerts).values(
                        id=alert_id,
                        account=self.account.name,
                        body=text,
                        reply_to=reply_to,
                        published_at=now,
                        expires_at=expires,
                    )
                )
        except OperationalError as exc:
            raise DeliveryError(Outcome.RETRYABLE, f"alert store unavailable: {exc.orig}") from None
        return self._receipt(alert_id)

    def lookup(self, text: str, *, to: str | None = None, since: dt.datetime) -> Receipt | None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(web_alerts.c.id, web_alerts.c.published_at).where(
                    web_alerts.c.account == self.account.name, web_alerts.c.body == text
                )
            ).all()
        found = [r.id for r in rows if _as_utc(r.published_at) >= since]
        return self._receipt(found[0]) if found else None

    def retract(self, receipt: Receipt) -> None:
        """Mark the alert withdrawn (its CAP becomes a Cancel); one already withdrawn keeps its
        first withdrawal time."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    update(web_alerts)
                    .where(
                        web_alerts.c.id == receipt.provider_id, web_alerts.c.retracted_at.is_(None)
                    )
                    .values(retracted_at=dt.datetime.now(dt.UTC))
                )
        except OperationalError as exc:
            raise DeliveryError(Outcome.RETRYABLE, f"alert store unavailable: {exc.orig}") from None
