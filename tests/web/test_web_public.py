"""The public alert pages and banner.js, over real HTTP on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import lxml.html
from lxml import etree
from sqlalchemy import select
from werkzeug.serving import make_server

from broadcaster.core.models import Delivery
from broadcaster.web import cap
from tests.conftest import CARMEN_LOCKDOWN, _service_missing, submit_and_approve
from tests.public_site import PAYLOAD, closure

GENERIC_LINK_TEXT = {"here", "click here", "more", "read more", "link", "this"}


def alert_ids(response) -> list[str]:
    """The alerts a page lists, in order (the banner is not a list item)."""
    doc = lxml.html.fromstring(response.content)
    return [a.get("href").rsplit("/", 1)[1] for a in doc.xpath("//ol[@class='alert-list']//h3/a")]


def banner_heading(response) -> str | None:
    doc = lxml.html.fromstring(response.content)
    found = doc.xpath("//section[contains(@class, 'banner')]//h2")
    return found[0].text_content().strip() if found else None


def test_an_approved_alert_reaches_the_site_and_revalidation_sees_the_next(
    stack, run, tokens, site, session_factory, cap_schema
):
    """The real path: compose, submit, approve, a Celery worker publishes; then the pages,
    the CAP document and conditional GET."""
    empty = site.get("/")
    assert empty.status_code == 200 and "There are no current alerts" in empty.text
    draft = run.json(
        "compose", *closure(PAYLOAD), "--as", "ana", "--channels", "web,x", token=tokens["ana"]
    )
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "sent"
    with session_factory() as session:
        alert_id = session.scalar(
            select(Delivery.provider_id).where(
                Delivery.message_id == draft["id"], Delivery.channel == "web"
            )
        )

    index = site.get("/", **{"If-None-Match": empty.headers["ETag"]})
    assert index.status_code == 200
    assert alert_ids(index) == [alert_id]
    assert banner_heading(index) == "School closure: Tuesday, March 3"
    again = site.get("/", **{"If-None-Match": index.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == index.headers["ETag"]
    since = site.get("/", **{"If-Modified-Since": index.headers["Last-Modified"]})
    assert since.status_code == 304

    page = site.get(f"/alerts/{alert_id}")
    assert page.status_code == 200
    assert PAYLOAD not in page.text  # never a live tag
    doc = lxml.html.fromstring(page.content)
    sections = {s.get("lang"): s.text_content() for s in doc.xpath("//main//section[@lang]")}
    assert set(sections) == {"en", "es"}
    assert f"due to {PAYLOAD}" in sections["en"]  # shown as the text that was typed
    assert f"Motivo: {PAYLOAD}" in sections["es"]

    document = site.get(f"/alerts/{alert_id}.cap.xml")
    assert document.headers["Content-Type"].startswith("application/cap+xml")
    xml = etree.fromstring(document.content)
    assert cap_schema.validate(xml), cap_schema.error_log
    ns = {"cap": cap.NAMESPACE}
    assert xml.findtext("cap:status", namespaces=ns) == "Actual"
    assert xml.findtext("cap:msgType", namespaces=ns) == "Alert"
    assert [i.findtext("cap:language", namespaces=ns) for i in xml.findall("cap:info", ns)] == [
        "en-US",
        "es-US",
    ]

    # A lockdown through the incident path: the page the client holds is stale at once, and
    # the more severe alert takes the banner.
    lockdown = run("trigger", *CARMEN_LOCKDOWN, "--yes", token=tokens["carmen"])
    assert lockdown.exit_code == 0, lockdown.output
    after = site.get("/", **{"If-None-Match": index.headers["ETag"]})
    assert after.status_code == 200
    assert banner_heading(after) == "Lockdown: Lincoln High School"
    assert len(alert_ids(after)) == 2 and alert_ids(after)[1] == alert_id


def test_alerts_are_listed_most_severe_first_then_newest(site):
    minor = site.publish(
        "event_cancellation",
        "--var",
        "event=the spring concert",
        "--var",
        "school=lincoln-hs",
        "--var",
        "date=2026-03-03",
        "--var",
        "reason=the weather",
    )
    moderate_old = site.publish(*closure("a power outage"))
    severe = site.publish("lockdown", "--var", "school=jefferson-es")
    moderate_new = site.publish(*closure("a water main break"))
    rehearsal = site.publish(*closure("a drill"), kind="exercise")
    index = site.get("/")
    assert alert_ids(index) == [severe, moderate_new, moderate_old, minor]
    assert banner_heading(index) == "Lockdown: Jefferson Elementary School"
    # A rehearsal is never listed with real alerts; its own page says what it is.
    page = site.get(f"/alerts/{rehearsal}")
    assert page.status_code == 200 and "This is an exercise message" in page.text
    assert site.get("/alerts/" + "0" * 32).status_code == 404


def test_pages_meet_the_accessibility_basics(site):
    alert_id = site.publish(*closure())
    for path in ("/", f"/alerts/{alert_id}"):
        response = site.get(path)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        doc = lxml.html.fromstring(response.content)
        assert doc.get("lang") == "en"
        assert len(doc.xpath("//h1")) == 1
        assert [len(doc.xpath(f"//{tag}")) for tag in ("header", "main", "footer")] == [1, 1, 1]
        assert doc.xpath("//a[@class='skip']/@href") == ["#main"]
        levels = [int(h.tag[1]) for h in doc.iter("h1", "h2", "h3", "h4", "h5", "h6")]
        assert levels[0] == 1
        assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False)), levels
        for link in doc.xpath("//a"):
            text = " ".join(link.text_content().split()).lower()
            assert text and text not in GENERIC_LINK_TEXT, lxml.html.tostring(link)
        for moment in doc.xpath("//time/@datetime"):
            assert dt.datetime.fromisoformat(moment).tzinfo is not None
        assert doc.xpath("//time")
        # The CSP refuses inline script and style: there must be none to refuse.
        assert not doc.xpath("//script[not(@src)] | //style | //*[@style]")
        # Severity in words, not by colour alone.
        assert "Moderate alert" in doc.text_content() or "Moderate" in doc.xpath("//dd/text()")
        for nav in doc.xpath("//main//nav"):
            assert nav.get("aria-label")

    doc = lxml.html.fromstring(site.get(f"/alerts/{alert_id}").content)
    languages = doc.xpath("//nav[@aria-label='Languages']//a")
    assert [(a.get("lang"), a.text_content()) for a in languages] == [
        ("en", "English"),
        ("es", "Español"),
    ]
    assert [(s.get("lang"), s.get("dir")) for s in doc.xpath("//section[@lang]")] == [
        ("en", "ltr"),
        ("es", "ltr"),
    ]


def test_an_expired_alert_leaves_the_list_and_its_page_says_when(site):
    valid_until = site.local(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).replace(
        microsecond=0
    )
    alert_id = site.publish(
        *closure(), "--valid-until", valid_until.replace(tzinfo=None).isoformat()
    )
    before = site.get("/")
    assert alert_ids(before) == [alert_id]
    time.sleep(max(0.0, (valid_until - dt.datetime.now(dt.UTC)).total_seconds() + 0.2))
    # Nothing was written: time alone makes the page the client holds stale.
    after = site.get("/", **{"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and alert_ids(after) == []
    page = lxml.html.fromstring(site.get(f"/alerts/{alert_id}").content)
    note = page.xpath("//div[contains(@class, 'status-note')]")[0]
    assert note.text_content().strip().startswith("This alert expired at")
    # In the district's time zone, machine-readable and for people.
    assert note.xpath(".//time/@datetime") == [valid_until.isoformat()]
    shown = note.xpath(".//time")[0].text_content()
    assert f"{valid_until.hour % 12 or 12}:{valid_until.minute:02d}" in shown
    assert valid_until.tzname() in shown


def test_updated_and_withdrawn_alerts_leave_the_list_and_say_so(site):
    first = site.publish(*closure("a power outage"))
    correction = site.publish(*closure("a water main break"), reply_to=first)
    index = site.get("/")
    assert alert_ids(index) == [correction]
    assert "Update" in lxml.html.fromstring(index.content).xpath("//span[@class='tag']/text()")
    old = lxml.html.fromstring(site.get(f"/alerts/{first}").content)
    assert "This alert has been updated" in old.text_content()
    assert old.xpath("//div[contains(@class, 'status-note')]//a/@href") == [f"/alerts/{correction}"]
    new = lxml.html.fromstring(site.get(f"/alerts/{correction}").content)
    assert new.xpath("//dt[text()='Updates']/following-sibling::dd[1]/a/@href") == [
        f"/alerts/{first}"
    ]

    site.withdraw(correction)
    after = site.get("/", **{"If-None-Match": index.headers["ETag"]})
    assert after.status_code == 200 and alert_ids(after) == []
    page = lxml.html.fromstring(site.get(f"/alerts/{correction}").content)
    note = page.xpath("//div[contains(@class, 'status-note')]")[0].text_content()
    assert note.strip().startswith("This alert was withdrawn on")


HOST_PAGE = """<!doctype html>
<html lang="en"><head><title>District home</title>
<script src="{src}" async></script></head>
<body><h1>Welcome to the district</h1></body></html>"""


@contextmanager
def district_home(script: str) -> Iterator[str]:
    """The district's own site on another origin (localhost, another port), embedding the
    script as the README says."""

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [HOST_PAGE.format(src=script).encode()]

    server = make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_port}/"
    finally:
        server.shutdown()


def test_banner_js_shows_the_current_alert_on_another_site_as_text(site):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        _service_missing("Chromium (apt-get install chromium)")
    markup = "<img src=x onerror=alert(1)>"
    dialogs: list[str] = []
    with sync_playwright() as playwright, district_home(f"{site.url}/banner.js") as home:
        browser = playwright.chromium.launch(executable_path=chromium)

        def visit():  # type: ignore[no-untyped-def]
            """A new visitor (a browser keeps banner.js for its max-age) on the district site."""
            page = browser.new_context().new_page()
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            with page.expect_response(lambda r: r.url.endswith("/banner.js")) as script:
                page.goto(home)  # waits for the load event, which waits for the async script
            assert script.value.status == 200
            return page

        assert visit().locator("#district-alert-banner").count() == 0  # no alert: nothing

        site.publish(
            "facility_closure",
            "--var",
            "facility=the pool",
            "--var",
            "date=2026-03-03",
            "--var",
            "reason=repairs",
        )
        alert_id = site.publish(
            "event_cancellation",
            "--var",
            f"event={markup}",
            "--var",
            "school=lincoln-hs",
            "--var",
            "date=2026-03-03",
            "--var",
            "reason=the weather",
        )
        site.withdraw(site.publish(*closure("a drill")))  # more severe, but withdrawn
        script = site.get("/banner.js")
        assert script.headers["Content-Type"].startswith("text/javascript")
        assert "<img" not in script.text
        assert "\\u003cimg src=x onerror=alert(1)\\u003e" in script.text

        page = visit()
        banner = page.locator("#district-alert-banner")
        banner.wait_for()
        assert page.evaluate("document.body.firstElementChild.id") == "district-alert-banner"
        links = banner.locator("a")
        # The newest of the most severe, in each language, the markup shown as typed.
        assert banner.inner_text().startswith(f"Minor alert: Canceled: {markup}")
        assert [links.nth(i).inner_text() for i in range(3)] == [
            f"Canceled: {markup}",
            f"Evento cancelado: {markup}",
            "All 2 current alerts",
        ]
        assert [links.nth(i).get_attribute("lang") for i in range(2)] == ["en", "es"]
        assert links.nth(0).get_attribute("href") == f"{site.url}/alerts/{alert_id}#lang-en"
        assert links.nth(2).get_attribute("href") == f"{site.url}/"
        assert page.locator("img").count() == 0
        browser.close()
    assert dialogs == []
