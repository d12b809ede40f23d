"""The public site for tests: the web app on a loopback port, and a quick way to publish.

`Site.publish` composes a draft with the real CLI, posts its web rendition with the real web
adapter and links it to the message with a delivery row, as a worker records a sent delivery.
The full path (approval, Celery, the worker) is exercised in test_web_public.py's main flow.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
import requests
from lxml import etree
from sqlalchemy import update
from werkzeug.serving import make_server

from broadcaster.core import db
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.models import Delivery, Message, WebAlert, utcnow
from broadcaster.delivery.accounts import account_config
from broadcaster.delivery.dispatch import MULTILINGUAL
from broadcaster.delivery.jobs import text_for
from broadcaster.web import create_app
from channel_adapters import Receipt
from channel_adapters.web import WebAdapter
from tests.conftest import SHARED, Cli, closure_vars

PAYLOAD = "<script>alert(1)</script>"
CAP_SCHEMA = SHARED / "conformance" / "cap" / "CAP-v1.2.xsd"


def closure(reason: str = "a power outage", *extra: str) -> tuple[str, ...]:
    """compose arguments for a closure of all schools, in English and Spanish, texting nobody."""
    return ("school_closure", *closure_vars(reason, reason, audience=None), *extra)


@dataclass
class Site:
    url: str
    run: Cli
    tokens: dict[str, str]
    db_url: str
    district: DistrictConfig

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(self.url + path, headers=headers, timeout=30)

    def adapter(self, account: str) -> WebAdapter:
        settings = Settings(database_url=self.db_url)
        return WebAdapter(account_config(settings, self.district, account, "actual"))

    def publish(
        self,
        *compose: str,
        kind: str = "actual",
        reply_to: str | None = None,
        as_user: str = "ana",
    ) -> str:
        """Publish a message on the web channel; returns the alert id."""
        draft = self.run.json(
            "compose",
            *compose,
            "--as",
            as_user,
            "--channels",
            "web",
            "--kind",
            kind,
            token=self.tokens[as_user],
        )
        account = "district-web" if kind == "actual" else "test-web"
        return self.post_web(draft["id"], account, reply_to)

    def post_web(
        self, message_id: int, account: str = "district-web", reply_to: str | None = None
    ) -> str:
        """Post a message's web rendition with the real adapter and link it with a sent delivery,
        as a worker records it; returns the alert id."""
        with db.session_scope(self.db_url) as session:
            text = text_for(session.get(Message, message_id), "web", MULTILINGUAL)
        receipt = self.adapter(account).send(text, reply_to=reply_to)
        with db.session_scope(self.db_url) as session:
            session.add(
                Delivery(
                    message_id=message_id,
                    channel="web",
                    account=account,
                    recipient=account,
                    locale=MULTILINGUAL,
                    status="sent",
                    provider_id=receipt.provider_id,
                    sent_at=utcnow(),
                )
            )
        return receipt.provider_id

    def withdraw(self, alert_id: str) -> None:
        self.adapter("district-web").retract(Receipt(alert_id))

    def expire(self, alert_id: str) -> dt.datetime:
        """Make the store's expiry pass (as if its time had come); returns it."""
        moment = utcnow() - dt.timedelta(seconds=1)
        with db.engine_for(self.db_url).begin() as connection:
            connection.execute(
                update(WebAlert).where(WebAlert.id == alert_id).values(expires_at=moment)
            )
        return moment

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(ZoneInfo(self.district.district.time_zone))


@pytest.fixture
def site(run, tokens, district, db_url, monkeypatch):
    """The web app on a loopback port (threaded, as deployed) with this test's settings."""
    for key, value in run.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BROADCASTER_PUBLIC_URL", raising=False)
    server = make_server("127.0.0.1", 0, create_app(Settings()), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_port}", run, tokens, db_url, district)
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def cap_schema():
    if not CAP_SCHEMA.exists():
        pytest.skip(f"{CAP_SCHEMA} is absent (clone outside the project)")
    return etree.XMLSchema(etree.parse(str(CAP_SCHEMA)))
