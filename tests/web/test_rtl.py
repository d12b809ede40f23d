"""Arabic reads right to left wherever it is read: an alert whose Arabic rendition names a
school by its Arabic name (the district file's `names`), in the console, on its public page and in
the Atom and RSS feeds, through the Flask test client. The template is the test's own, so the check
does not wait on the library's translations."""

from __future__ import annotations

import shutil

import lxml.html
import pytest
from lxml import etree

from broadcaster.core.config import SAMPLE_DISTRICT, Settings, load_district
from broadcaster.web import create_app
from tests.console_client import Console, body
from tests.public_site import Site

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
NS = {"a": "http://www.w3.org/2005/Atom", "dc": "http://purl.org/dc/elements/1.1/"}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
LINCOLN_AR = "مدرسة لينكولن الثانوية"

META = """title = "Closure notice"
category = "closure"
channels = ["web"]

[cap]
event = "School Closure"
category = "Safety"
severity = "Moderate"
urgency = "Expected"

[[variables]]
name = "school"
type = "school"

[reviewed]
"web.ar.j2" = false
"""
WEB_EN = "<h2>Closed today: {{ school }}</h2>\n<p>{{ school }} is closed today.</p>\n"
WEB_AR = "<h2>إغلاق اليوم: {{ school }}</h2>\n<p>{{ school }} مغلقة اليوم.</p>\n"


def sections(html: str) -> dict[str, tuple[str | None, str]]:
    """Each language's section of a page or feed entry: its dir and its text."""
    doc = lxml.html.fromstring(f"<div>{html}</div>")
    return {s.get("lang"): (s.get("dir"), s.text_content()) for s in doc.xpath("//section")}


@SQLITE_ONLY
def test_an_arabic_alert_reads_right_to_left_in_the_console_on_its_page_and_in_feeds(
    run, tokens, db_url, tmp_path, monkeypatch
):
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder)
    own = folder / "own" / "closure_notice"
    own.mkdir(parents=True)
    for name, text in {"meta.toml": META, "web.en.j2": WEB_EN, "web.ar.j2": WEB_AR}.items():
        (own / name).write_text(text, encoding="utf-8")
    config = folder / "district.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[district]", 'templates_dirs = ["own"]\n\n[district]', 1))
    run.env["BROADCASTER_CONFIG"] = str(config)
    for key, value in run.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BROADCASTER_PUBLIC_URL", raising=False)
    site = Site("", run, tokens, db_url, load_district(config))
    draft = run.json(
        "compose",
        "closure_notice",
        *("--var", "school=lincoln-hs", "--locales", "ar,en", "--channels", "web"),
        *("--as", "ana"),
        token=tokens["ana"],
    )
    alert_id = site.post_web(draft["id"])
    client = create_app(Settings()).test_client()

    # The console shows each rendition in its direction.
    console = Console(run, dict(tokens), monkeypatch)
    console.app()
    shown = lxml.html.fromstring(
        body(console.signed_in("ana").get(f"/console/messages/{draft['id']}"))
    )
    directions = {p.get("lang"): p.get("dir") for p in shown.xpath("//pre[@class='rendition']")}
    assert directions == {"ar": "rtl", "en": "ltr"}

    page = client.get(f"/alerts/{alert_id}")
    assert page.status_code == 200
    doc = lxml.html.fromstring(page.data)
    parts = {s.get("lang"): s for s in doc.xpath("//section[contains(@class, 'alert-text')]")}
    assert parts["ar"].get("dir") == "rtl" and LINCOLN_AR in parts["ar"].text_content()
    assert parts["en"].get("dir") == "ltr" and "Lincoln High School" in parts["en"].text_content()
    [heading] = doc.xpath("//h1")  # the alert begins in Arabic: so does its heading
    assert (heading.get("lang"), heading.get("dir")) == ("ar", "rtl")
    assert LINCOLN_AR in heading.text_content()
    [link] = doc.xpath("//nav[@aria-label='Languages']//a[@lang='ar']")
    assert link.get("dir") == "rtl" and link.text_content() == "العربية"
    index = lxml.html.fromstring(client.get("/").data)
    assert index.xpath("//section[contains(@class, 'banner')]//h2")[0].get("dir") == "rtl"

    atom = etree.fromstring(client.get("/feeds/alerts.atom").data)
    [entry] = atom.findall("a:entry", NS)
    assert entry.get(XML_LANG) == "ar"
    content = entry.find("a:content", NS)
    assert content is not None and content.get("type") == "html"
    found = sections(content.text or "")
    assert found["ar"][0] == "rtl" and LINCOLN_AR in found["ar"][1]
    assert found["en"][0] == "ltr" and "Lincoln High School" in found["en"][1]

    rss = etree.fromstring(client.get("/feeds/alerts.rss").data)
    [item] = rss.findall("channel/item")
    assert item.findtext("dc:language", namespaces=NS) == "ar"
    assert sections(item.findtext(ENCODED) or "")["ar"][0] == "rtl"
