"""The web channel's alert store (channel_adapters.AlertStore) on the broadcaster's database: the
`web_alerts` rows (core/models.py WebAlert) that the public pages and feeds serve.

The web adapter is called outside the worker's session, so each call is its own short transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from broadcaster.core import db
from broadcaster.core.models import WebAlert, utcnow
from channel_adapters import AlertStoreUnavailable


@dataclass(frozen=True)
class WebAlertStore:
    database_url: str

    def publish(
        self, account: str, body: str, reply_to: str | None, expires_at: dt.datetime | None
    ) -> str:
        alert_id = uuid.uuid4().hex
        alert = WebAlert(
            id=alert_id,
            account=account,
            body=body,
            reply_to=reply_to,
            published_at=utcnow(),
            expires_at=expires_at,
        )
        try:
            with db.session_scope(self.database_url) as session:
                session.add(alert)
        except OperationalError as exc:
            raise AlertStoreUnavailable(str(exc.orig)) from None
        return alert_id

    def find(self, account: str, body: str, since: dt.datetime) -> str | None:
        with db.read_scope(self.database_url) as session:
            return session.scalars(
                select(WebAlert.id)
                .where(
                    WebAlert.account == account,
                    WebAlert.body == body,
                    WebAlert.published_at >= since,
                )
                .order_by(WebAlert.published_at, WebAlert.id)
            ).first()

    def withdraw(self, alert_id: str) -> None:
        try:
            with db.session_scope(self.database_url) as session:
                session.execute(
                    update(WebAlert)
                    .where(WebAlert.id == alert_id, WebAlert.retracted_at.is_(None))
                    .values(retracted_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        except OperationalError as exc:
            raise AlertStoreUnavailable(str(exc.orig)) from None
