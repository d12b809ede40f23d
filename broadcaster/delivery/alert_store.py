"""The web channel's alert store (channel_adapters.AlertStore) on the broadcaster's database: the
`web_alerts` rows (core/models.py WebAlert) that the public pages and feeds serve.

The web adapter is called outside the worker's session, so each call is its own short transaction.
When the district publishes its public site as static files (`[web] publish_dir`), each change,
once committed, asks a web worker to rewrite them (`announce_change`).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from broadcaster.core import db
from broadcaster.core.config import Settings
from broadcaster.core.models import WebAlert, utcnow
from broadcaster.delivery.celery_app import PUBLISH_SITE, WEB, client_for
from channel_adapters import AlertStoreUnavailable

log = logging.getLogger(__name__)


def announce_change(settings: Settings) -> None:
    """Ask a web worker to republish the public site (by task name: delivery does not import
    web). A broker that does not answer loses nothing that matters: the alert is stored, and
    the beat's check republishes once the broker is back."""
    try:
        client_for(settings).send_task(PUBLISH_SITE, queue=WEB)
    except Exception as exc:  # any broker failure; the change is committed regardless
        log.warning("public site not republished now (the beat will): %s", exc)


@dataclass(frozen=True)
class WebAlertStore:
    database_url: str
    # The settings whose broker hears of each change, when the district publishes a static site.
    announce_to: Settings | None = None

    def _changed(self) -> None:
        if self.announce_to is not None:
            announce_change(self.announce_to)

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
        self._changed()
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
        self._changed()
