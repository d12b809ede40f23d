"""The public site as static files (web/publish.py), on SQLite and PostgreSQL: the published
bytes are the Flask routes' for every public URL; each change to the store (a new alert, a
withdrawal, an expiry, a retention purge) rewrites them; a reader never sees part of a file;
alert text stays inert; no id writes outside the folder; bursts coalesce."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
import redis
from lxml import etree
from sqlalchemy import select

from broadcaster.core import db
from broadcaster.core.config import SAMPLE_CONFIG, Settings, load_district
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import Delivery, Rendition, User, WebAlert, utcnow
from broadcaster.core.text_safety import clean_for_xml
from broadcaster.delivery import celery_app
from broadcaster.delivery.accounts import account_config
from broadcaster.delivery.celery_app import PUBLISH_SITE, WEB
from broadcaster.records import retention
from broadcaster.web import publish
from broadcaster.web.publish import FIXED_URLS, File, write_folder
from channel_adapters import Receipt
from channel_adapters.web import WebAdapter
from tests.conftest import submit_and_approve
from tests.delivery_stack import redis_url
from tests.public_site import PAYLOAD, closure
from tests.web.conftest import publishing_district, url_of

FEEDS = ("alerts.rss", "alerts.atom", "alerts.json", "cap.atom")

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def assert_same_as_flask(published) -> dict[str, bytes]:
    """Every published file is what the live app answers for its URL, body and headers."""
    files = published.files()
    rendered = {f.path: f for f in published.publisher.render(utcnow())}
    for path, body in files.items():
        answer = published.site.get(url_of(path))
        assert answer.status_code == 200, path
        assert answer.content == body, path
        entry = rendered[path]
        assert entry.content_type == answer.headers["Content-Type"], path
        assert entry.cache_control == answer.headers["Cache-Control"], path
    return files


def test_every_public_url_is_published_with_the_flask_bytes(published):
    site = published.site
    first = site.publish(*closure("a power outage"))
    correction = site.publish(*closure("a water main break"), reply_to=first)
    withdrawn = site.publish(*closure("a gas leak"))
    site.withdraw(withdrawn)
    rehearsal = site.publish(*closure("a drill"), kind="exercise")

    outcome = published.publisher.publish(force=True)

    alerts = [first, correction, withdrawn, rehearsal]
    expected = {f"alerts/{a}" for a in alerts} | {f"alerts/{a}.cap.xml" for a in alerts}
    expected |= {publish.path_for(url) for url in FIXED_URLS}
    assert outcome.rendered and not outcome.busy and set(outcome.written) == expected
    files = assert_same_as_flask(published)
    assert set(files) == expected
    assert f"/alerts/{correction}".encode() in files["index.html"]
    assert f"/alerts/{withdrawn}".encode() not in files["index.html"]
    # Files nginx's own user can read; no temporary file left behind.
    assert all((published.root / p).stat().st_mode & 0o777 == 0o644 for p in files)
    assert not list(published.root.rglob("*.tmp"))


def test_each_change_to_the_store_rewrites_the_site(published, run, tokens):
    site, publisher = published.site, published.publisher
    publisher.publish()
    empty = published.files()
    assert b"There are no current alerts" in empty["index.html"]
    assert publisher.publish().rendered is False  # nothing changed: the beat's check is cheap

    alert = site.publish(*closure("a power outage"))
    assert publisher.publish().rendered
    posted = assert_same_as_flask(published)
    assert f"/alerts/{alert}".encode() in posted["index.html"]
    assert posted["feeds/alerts.rss"] != empty["feeds/alerts.rss"]
    assert b"a power outage" in posted[f"alerts/{alert}"]

    # A correction: the corrected alert's page (unchanged itself) now points to it.
    correction = site.publish(*closure("a water main break"), reply_to=alert)
    outcome = publisher.publish()
    assert {f"alerts/{alert}", f"alerts/{correction}"} <= set(outcome.written)
    assert_same_as_flask(published)

    site.withdraw(alert)
    outcome = publisher.publish()
    assert {"feeds/cap.atom", f"alerts/{alert}.cap.xml"} <= set(outcome.written)
    assert f"alerts/{correction}" not in outcome.written  # its inputs did not change
    withdrawn = assert_same_as_flask(published)
    assert f"/alerts/{alert}".encode() not in withdrawn["index.html"]
    assert b"<msgType>Cancel</msgType>" in withdrawn[f"alerts/{alert}.cap.xml"]

    later = site.publish(*closure("a winter storm"))
    publisher.publish()
    assert f"/alerts/{later}".encode() in published.files()["index.html"]
    site.expire(later)  # its time passes: no write to the store but the clock's
    outcome = publisher.publish()
    assert "index.html" in outcome.written and "banner.js" in outcome.written
    expired = assert_same_as_flask(published)
    assert f"/alerts/{later}".encode() not in expired["index.html"]

    # A retention purge destroys the text: once it commits it announces a republish (the task
    # by name on the broker's web queue), and the store's fingerprint has changed.
    with db.session_scope(site.db_url, settings=published.settings) as session:
        officer = session.scalars(select(User).where(User.name == "dev")).one()
        far = utcnow() + dt.timedelta(days=366 * 30)
        assert retention.purge(session, published.district, officer, now=far).due
    assert announced(published) == [PUBLISH_SITE]
    assert publisher.publish().rendered
    purged = assert_same_as_flask(published)
    assert b"a winter storm" not in purged[f"alerts/{later}"]
    assert b"destroyed under the retention schedule" in purged[f"alerts/{later}"]


def announced(published) -> list[dict]:
    """The names of the tasks waiting on the broker's web queue (kombu's Redis list)."""
    broker = redis.Redis.from_url(published.settings.broker_url)
    return [json.loads(raw)["headers"]["task"] for raw in broker.lrange(WEB, 0, -1)]


@SQLITE_ONLY
def test_a_district_that_publishes_announces_each_store_change(published):
    """Its web adapter's store asks for a republish after each commit; the sample district's,
    which publishes no site, does not."""
    quiet = published.site.adapter("district-web")
    quiet.retract(Receipt(quiet.send("<p>not announced</p>").provider_id))
    assert announced(published) == []
    config = account_config(published.settings, published.district, "district-web", "actual")
    adapter = WebAdapter(config)
    receipt = adapter.send("<p>announced</p>")
    adapter.retract(Receipt(receipt.provider_id))
    assert announced(published) == [PUBLISH_SITE] * 2


@SQLITE_ONLY
def test_a_reader_never_sees_part_of_a_file(published):
    """A reader loop parses the feed while the site is rewritten again and again."""
    site, publisher = published.site, published.publisher
    publisher.publish()
    feed = published.root / "feeds" / "alerts.rss"
    stop, reads, errors = threading.Event(), [0], []

    def reader() -> None:
        while not stop.is_set():
            try:
                etree.fromstring(feed.read_bytes())
                reads[0] += 1
            except etree.XMLSyntaxError as exc:  # a truncated or half-written feed
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        sizes = set()
        for i in range(6):
            site.publish(*closure(f"reason {i} " + "x" * 8 * i))
            assert publisher.publish().rendered
            sizes.add(len(feed.read_bytes()))
    finally:
        stop.set()
        thread.join()
    assert errors == [] and reads[0] > 50 and len(sizes) == 6
    assert not list(published.root.rglob("*.tmp"))


def test_a_changed_file_gets_a_new_mtime_second_and_an_unchanged_one_keeps_its_own(tmp_path):
    """nginx's ETag is the mtime's second and the size: new bytes of the same size, written
    within the same second, must still change it; unchanged bytes keep it."""
    files = [File("feeds/alerts.rss", b"<a>1</a>", "application/rss+xml", "no-cache")]
    assert write_folder(tmp_path, files) == (["feeds/alerts.rss"], [])
    target = tmp_path / "feeds" / "alerts.rss"
    first = int(target.stat().st_mtime)
    assert write_folder(tmp_path, files) == ([], [])
    assert int(target.stat().st_mtime) == first
    write_folder(tmp_path, [File("feeds/alerts.rss", b"<a>2</a>", "application/rss+xml", "")])
    assert int(target.stat().st_mtime) > first and target.read_bytes() == b"<a>2</a>"


@SQLITE_ONLY
def test_alert_text_is_as_inert_in_the_files_as_in_flask(published):
    """Markup and script from variables, and, in a stored row written before the way in refused
    them, a bidi override and characters XML cannot carry: escaped or replaced in the published
    files exactly as the Flask routes do it (the bytes are equal), never live."""
    site = published.site
    script = site.publish(*closure(PAYLOAD))
    markup = site.publish(*closure('<img src=x onerror=alert(2)> ]]> &amp; "q"'))
    with db.session_scope(site.db_url) as session:
        message_id = session.scalar(
            select(Delivery.message_id).where(Delivery.provider_id == script)
        )
        rendition = session.scalars(
            select(Rendition).where(Rendition.message_id == message_id, Rendition.locale == "es")
        ).one()
        rendition.text = rendition.text.replace("<p>", "<p>\u202eevil\u202c \x0b\x1b\ufffe ", 1)
    published.publisher.publish(force=True)
    files = assert_same_as_flask(published)
    pages = ["index.html", "banner.js"] + [f"feeds/{name}" for name in FEEDS]
    for alert in (script, markup):
        pages += [f"alerts/{alert}", f"alerts/{alert}.cap.xml"]
    for path in pages:
        text = files[path].decode()
        assert PAYLOAD not in text and "<img src=x" not in text, path
        assert "\x0b" not in text and "\x1b" not in text and "\ufffe" not in text, path
        assert clean_for_xml(text) == text, path
        if path.endswith((".rss", ".atom", ".xml")):
            etree.fromstring(files[path])  # still well-formed
    assert "&lt;script&gt;" in files[f"alerts/{script}"].decode()
    assert "\ufffd" in files[f"alerts/{script}.cap.xml"].decode()


@SQLITE_ONLY
def test_no_alert_id_writes_outside_the_folder(published, tmp_path, caplog):
    """An id the store never made (a tampered row) gets no file; a path that would leave the
    folder is refused outright."""
    site = published.site
    alert = site.publish(*closure("a power outage"))
    escape = "../" * 10 + "xy"  # 32 characters, like a store id
    with db.session_scope(site.db_url) as session:
        message_id = session.scalar(
            select(Delivery.message_id).where(Delivery.provider_id == alert)
        )
        session.add(
            WebAlert(id=escape, account="district-web", body="<p>x</p>", published_at=utcnow())
        )
        session.add(
            Delivery(
                message_id=message_id,
                channel="web",
                account="test-web",
                recipient="test-web",
                locale="*",
                status="sent",
                provider_id=escape,
                sent_at=utcnow(),
            )
        )
    before = {p for p in tmp_path.rglob("*")}
    published.publisher.publish(force=True)
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(p.is_relative_to(published.root) for p in created)
    assert not (published.root.parent / "xy").exists()
    assert "skipping alert id" in caplog.text
    with pytest.raises(BroadcasterError, match="outside"):
        write_folder(published.root, [File("alerts/../../escaped", b"x", "text/html", "")])
    assert not (published.root.parent / "escaped").exists()


@SQLITE_ONLY
def test_a_burst_of_requests_coalesces(published):
    """A request that finds a run in progress leaves its mark and returns; the running one
    renders once more before it lets go, so the last change is never lost."""
    site, publisher = published.site, published.publisher
    publisher.publish()
    with publish._try_lock(published.root / publish.LOCK) as held:
        assert held
        alert = site.publish(*closure("a power outage"))
        assert publisher.publish().busy  # what a second worker thread would see
        assert publisher.publish(force=True).busy
        assert (published.root / publish.AGAIN).exists()
    assert f"/alerts/{alert}".encode() not in published.files()["index.html"]
    outcome = publisher.publish()  # the mark is taken with the next run
    assert outcome.rendered and not (published.root / publish.AGAIN).exists()
    assert f"/alerts/{alert}".encode() in published.files()["index.html"]


@SQLITE_ONLY
def test_a_worker_publishes_an_approved_alert_and_its_withdrawal(publishing, stack, run, tokens):
    """The whole path: approval, the worker's web delivery, the store's announcement, the task
    on the web queue (which waits for the delivery's link) and the files; then a retraction. The
    beat's check runs only hourly here, so what publishes is the announcement."""
    run.env["BROADCASTER_SCHEDULE_EVERY"] = "3600"
    stack.start_worker()
    root = load_district(publishing).site_dir
    draft = run.json(
        "compose",
        *closure("a power outage"),
        "--as",
        "ana",
        "--channels",
        "web",
        token=tokens["ana"],
    )
    submit_and_approve(run, tokens, draft)
    stack.wait_done(draft["id"])
    with db.read_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        alert = session.scalar(
            select(Delivery.provider_id).where(Delivery.message_id == draft["id"])
        )

    def index() -> bytes:
        try:
            return (root / "index.html").read_bytes()
        except FileNotFoundError:
            return b""

    stack.wait_for(lambda: f"/alerts/{alert}".encode() in index(), timeout=30)
    assert b"a power outage" in (root / "alerts" / alert).read_bytes()
    retracted = run(
        "retract",
        str(draft["id"]),
        "--as",
        "ben",
        "--reason",
        "sent in error",
        token=tokens["ben"],
    )
    assert retracted.exit_code == 0, retracted.output
    stack.wait_for(lambda: f"/alerts/{alert}".encode() not in index(), timeout=30)
    assert b"<msgType>Cancel</msgType>" in (root / "alerts" / f"{alert}.cap.xml").read_bytes()


def test_the_beat_checks_the_site_only_where_it_is_published(tmp_path):
    conf = celery_app.app.conf
    before = conf.broker_url, conf.beat_schedule
    plain = Settings(home=tmp_path, broker_url=redis_url())  # a broker: nothing embedded starts
    try:
        assert "publish-site" not in celery_app.configure(plain).conf.beat_schedule
        config = publishing_district(tmp_path)
        beat = celery_app.configure(plain.model_copy(update={"config": config})).conf.beat_schedule
        assert beat["publish-site"]["task"] == PUBLISH_SITE
    finally:
        conf.broker_url, conf.beat_schedule = before


@SQLITE_ONLY
def test_site_publish_rewrites_the_folder_on_demand(published, run):
    site = published.site
    alert = site.publish(*closure("a power outage"))
    done = run.json("site", "publish")
    assert done["rendered"] and f"alerts/{alert}" in done["written"]
    # A folder edited by hand: a run after a change re-renders only the alerts whose inputs
    # changed (not this one), while `site publish` rewrites everything.
    (published.root / "index.html").unlink()
    (published.root / "alerts" / alert).write_bytes(b"edited by hand")
    site.publish(*closure("a water main break"))
    published.publisher.publish()
    assert (published.root / "alerts" / alert).read_bytes() == b"edited by hand"
    again = run("site", "publish")
    assert again.exit_code == 0, again.output
    assert "1 file written, 0 removed" in again.output
    assert_same_as_flask(published)
    run.env["BROADCASTER_CONFIG"] = str(SAMPLE_CONFIG)  # which publishes nothing
    sample = run("site", "publish")
    assert sample.exit_code == 2 and "no [web] publish_dir" in sample.output
