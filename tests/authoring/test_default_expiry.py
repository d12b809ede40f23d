"""Every alert ends: a message composed without --valid-until is valid for its template's
`default_valid_hours` from its send time, on the public site, in its CAP document and for its
texts; an explicit valid until still wins."""

from __future__ import annotations

import datetime as dt
import tomllib
from zoneinfo import ZoneInfo

from lxml import etree

from broadcaster.authoring.catalog import Catalog
from broadcaster.core import db
from broadcaster.core.config import BUILTIN_TEMPLATES
from broadcaster.core.models import Message, utcnow
from broadcaster.web import alerts, cap
from tests.public_site import closure

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


def current(site, now: dt.datetime) -> list[str]:
    """The ids of the alerts the public site lists as current at `now`."""
    with db.session_scope(site.db_url) as session:
        listed = alerts.active_alerts(session, site.district, Catalog(site.district), now)
        return [a.id for a in listed]


def valid_until(site, alert_id: str) -> dt.datetime:
    with db.session_scope(site.db_url) as session:
        alert = alerts.get_alert(session, site.district, Catalog(site.district), alert_id)
        message = session.get(Message, alert.message_id)
        moment = message.valid_until
    return moment.replace(tzinfo=moment.tzinfo or dt.UTC)


def test_every_library_template_declares_its_default_expiry():
    for meta in sorted(BUILTIN_TEMPLATES.glob("*/meta.toml")):
        hours = tomllib.loads(meta.read_text(encoding="utf-8")).get("default_valid_hours")
        assert isinstance(hours, int) and 1 <= hours <= 72, meta.parent.name


def test_a_closure_without_valid_until_leaves_the_current_list_after_its_default(site, cap_schema):
    before = utcnow()
    alert_id = site.publish(*closure("a power outage"))
    after = utcnow()
    ends = valid_until(site, alert_id)
    day = dt.timedelta(hours=24)  # school_closure's default_valid_hours
    assert before + day <= ends <= after + day
    assert current(site, utcnow()) == [alert_id]
    assert current(site, ends - dt.timedelta(seconds=1)) == [alert_id]
    assert current(site, ends) == []
    # Its CAP document says when it expires.
    document = etree.fromstring(site.get(f"/alerts/{alert_id}.cap.xml").content)
    cap_schema.assertValid(document)
    expires = document.findtext("cap:info/cap:expires", namespaces=NS)
    assert expires == cap.cap_time(ends, site.district)


def test_an_explicit_valid_until_wins_over_the_default(site):
    tomorrow = site.local(utcnow() + dt.timedelta(days=1)).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    alert_id = site.publish(
        *closure("a power outage"), "--valid-until", tomorrow.replace(tzinfo=None).isoformat()
    )
    assert valid_until(site, alert_id) == tomorrow
    week = site.local(utcnow() + dt.timedelta(days=7)).replace(second=0, microsecond=0)
    longer = site.publish(
        *closure("a flood"), "--valid-until", week.replace(tzinfo=None).isoformat()
    )
    assert valid_until(site, longer) == week
    assert longer in current(site, utcnow() + dt.timedelta(days=3))


def test_the_default_counts_from_send_at_and_shows_in_preview_and_template(run, tokens, district):
    zone = ZoneInfo(district.district.time_zone)
    send_at = (utcnow() + dt.timedelta(hours=2)).astimezone(zone)
    local_send = send_at.replace(second=0, microsecond=0, tzinfo=None)
    draft = run.json(
        "compose",
        *closure("a storm"),
        "--channels",
        "web",
        "--send-at",
        local_send.isoformat(),
        "--as",
        "ana",
        token=tokens["ana"],
    )
    starts = dt.datetime.fromisoformat(draft["send_at"])
    assert dt.datetime.fromisoformat(draft["valid_until"]) == starts + dt.timedelta(hours=24)
    lockdown = run.json("templates", "show", "lockdown")
    assert lockdown["default_valid_hours"] == 12
    shown = run("templates", "show", "lockdown").stdout
    assert "valid 12 h unless --valid-until says otherwise" in shown
