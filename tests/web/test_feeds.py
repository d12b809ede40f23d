"""Alert feeds and CAP over real HTTP, on SQLite and PostgreSQL: they parse, list the current
alerts, keep text inert, revalidate, and the CAP documents validate against the official schema."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from lxml import etree

from broadcaster.web import cap
from tests.public_site import PAYLOAD, closure

NS = {"a": "http://www.w3.org/2005/Atom", "cap": cap.NAMESPACE}
FEEDS = {
    "/feeds/alerts.rss": "application/rss+xml",
    "/feeds/alerts.atom": "application/atom+xml",
    "/feeds/alerts.json": "application/feed+json",
    "/feeds/cap.atom": "application/atom+xml",
}


def listed(site) -> dict[str, list[str]]:
    """The alert pages each feed links, and the CAP documents of the CAP index."""
    rss = etree.fromstring(site.get("/feeds/alerts.rss").content)
    atom = etree.fromstring(site.get("/feeds/alerts.atom").content)
    index = etree.fromstring(site.get("/feeds/cap.atom").content)
    return {
        "rss": rss.xpath("/rss/channel/item/link/text()"),
        "atom": atom.xpath("//a:entry/a:link/@href", namespaces=NS),
        "json": [item["url"] for item in site.get("/feeds/alerts.json").json()["items"]],
        "cap": index.xpath(
            "//a:entry/a:link[@rel='alternate'][@type='application/cap+xml']/@href", namespaces=NS
        ),
    }


def cap_of(site, alert_id: str, schema) -> etree._Element:
    response = site.get(f"/alerts/{alert_id}.cap.xml")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/cap+xml")
    xml = etree.fromstring(response.content)
    assert schema.validate(xml), schema.error_log
    return xml


def field(xml: etree._Element, name: str) -> str | None:
    return xml.findtext(f"cap:{name}", namespaces=NS)


def test_feeds_list_the_current_alerts_and_keep_their_text_inert(site, cap_schema):
    alert_id = site.publish(*closure(PAYLOAD))
    rehearsal = site.publish(*closure("a drill"), kind="exercise")
    page = f"{site.url}/alerts/{alert_id}"
    assert listed(site) == {
        "rss": [page],
        "atom": [page],
        "json": [page],
        "cap": [f"{page}.cap.xml"],
    }
    for path, mimetype in FEEDS.items():
        response = site.get(path)
        assert response.headers["Content-Type"].startswith(mimetype), path
        assert response.headers["Cache-Control"] == "public, max-age=30"
        assert b"<script>" not in response.content, path  # escaped or in a JSON string

    rss = etree.fromstring(site.get("/feeds/alerts.rss").content)
    description = rss.findtext("channel/item/description")
    assert f"due to {PAYLOAD}." in description and f"Motivo: {PAYLOAD}." in description
    atom = etree.fromstring(site.get("/feeds/alerts.atom").content)
    assert f"due to {PAYLOAD}." in atom.findtext("a:entry/a:summary", namespaces=NS)
    # The HTML content (each language in a section with its direction) carries the value
    # escaped, as the alert's page does: text, never markup, once a reader unescapes it.
    for html in (
        atom.findtext("a:entry/a:content[@type='html']", namespaces=NS),
        rss.findtext("channel/item/{http://purl.org/rss/1.0/modules/content/}encoded"),
    ):
        assert '<section lang="es" dir="ltr">' in html
        assert "due to &lt;script&gt;alert(1)&lt;/script&gt;." in html and PAYLOAD not in html
    feed = site.get("/feeds/alerts.json").json()
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    [item] = feed["items"]
    assert f"due to {PAYLOAD}." in item["content_text"] and "content_html" not in item
    assert item["title"] == "School closure: Tuesday, March 3"

    xml = cap_of(site, alert_id, cap_schema)
    assert (field(xml, "status"), field(xml, "msgType")) == ("Actual", "Alert")
    infos = xml.findall("cap:info", NS)
    assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["en-US", "es-US"]
    assert [i.findtext("cap:headline", namespaces=NS) for i in infos] == [
        "School closure: Tuesday, March 3",
        "Cierre de escuelas: martes 3 de marzo",
    ]
    assert f"due to {PAYLOAD}." in infos[0].findtext("cap:description", namespaces=NS)
    # A rehearsal is in no feed, and its CAP document says what it is.
    assert field(cap_of(site, rehearsal, cap_schema), "status") == "Exercise"


def test_cap_updates_and_cancels_reference_what_they_correct(site, cap_schema):
    first = site.publish(*closure("a power outage"))
    correction = site.publish(*closure("a water main break"), reply_to=first)
    original = cap_of(site, first, cap_schema)
    original_ref = ",".join(field(original, f) for f in ("sender", "identifier", "sent"))
    update = cap_of(site, correction, cap_schema)
    assert field(update, "msgType") == "Update"
    assert field(update, "references") == original_ref
    assert listed(site)["cap"] == [f"{site.url}/alerts/{correction}.cap.xml"]

    site.withdraw(correction)
    cancel = cap_of(site, correction, cap_schema)
    assert field(cancel, "msgType") == "Cancel"
    assert field(cancel, "identifier") != field(update, "identifier")  # a message of its own
    update_ref = ",".join(field(update, f) for f in ("sender", "identifier", "sent"))
    assert field(cancel, "references") == f"{original_ref} {update_ref}"
    assert listed(site) == {
        "rss": [],
        "atom": [],
        "json": [],
        "cap": [f"{site.url}/alerts/{correction}.cap.xml"],  # the Cancel, for aggregators
    }
    index = etree.fromstring(site.get("/feeds/cap.atom").content)
    [entry] = index.findall("a:entry", NS)
    assert entry.findtext("a:title", namespaces=NS).startswith("Withdrawn: ")
    assert entry.xpath("a:category/@term", namespaces=NS) == ["Cancel"]


def test_an_expired_alert_leaves_every_feed(site, cap_schema):
    expiring = site.publish(*closure("a power outage"))
    staying = site.publish(*closure("a water main break"))
    before = {path: site.get(path) for path in FEEDS}
    assert len(listed(site)["atom"]) == 2
    expired_at = site.expire(expiring)
    for path, response in before.items():
        again = site.get(path, **{"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 200, path  # the copy a reader holds is stale
    page = f"{site.url}/alerts/{staying}"
    assert listed(site) == {
        "rss": [page],
        "atom": [page],
        "json": [page],
        "cap": [f"{page}.cap.xml"],
    }
    # Its CAP document stays available, with the expiry that passed.
    expires = cap_of(site, expiring, cap_schema).findtext("cap:info/cap:expires", namespaces=NS)
    assert expires == cap.cap_time(expired_at, site.district)


def test_feeds_revalidate_and_agree_under_concurrent_requests(site):
    site.publish(*closure("a power outage"))
    first = site.get("/feeds/alerts.atom")
    assert first.status_code == 200 and first.headers["ETag"] and first.headers["Last-Modified"]
    same = site.get("/feeds/alerts.atom", **{"If-None-Match": first.headers["ETag"]})
    assert same.status_code == 304 and same.content == b""
    since = site.get("/feeds/alerts.atom", **{"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    assert site.get("/alerts/" + "f" * 32 + ".cap.xml").status_code == 404

    # Many readers at once on the threaded server: one answer, whichever thread rendered it.
    site.publish(*closure("a water main break"))
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: site.get("/feeds/alerts.atom"), range(64)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1 and len({a.headers["ETag"] for a in answers}) == 1
    assert answers[0].headers["ETag"] != first.headers["ETag"]
    assert len(etree.fromstring(answers[0].content).findall("a:entry", NS)) == 2
