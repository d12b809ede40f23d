"""Alert feeds: RSS, Atom and JSON Feed of the current alerts, a CAP index (Atom) and each
alert's CAP 1.2 document.

Feeds are built by feedgen, CAP by ElementTree and JSON Feed by json.dumps (with `<>&` escaped
too): each escapes what it is given, so text from an alert is always data, never markup. What
escaping cannot fix, a character XML cannot carry, never reaches them: alerts.py cleans stored
text as it reads it and cap.py cleans every value it writes (text_safety.clean_for_xml), so one
bad row shows U+FFFD instead of taking a feed down (lxml refuses such a string outright).
"""

from __future__ import annotations

import datetime as dt

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from flask import Blueprint, Response, abort
from lxml import etree

from broadcaster.web import alerts, cap, context
from broadcaster.web.http_cache import FEED_CACHE_CONTROL, cached, request_now
from broadcaster.web.public import ALERT_ID, absolute_url, safe_json

feeds = Blueprint("feeds", __name__)

CAP_TYPE = "application/cap+xml"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # `updated` of a store that never published


def _current() -> tuple[list[alerts.Alert], dt.datetime]:
    """The active alerts and when the store last changed (the feeds' own date)."""
    now = request_now()
    with context.reading() as session:
        active = alerts.active_alerts(session, context.district(), context.catalog(), now)
        changed = alerts.store_state(session, now).last_modified
    return active, changed or EPOCH


def _text(alert: alerts.Alert) -> str:
    """Every language, headline then text, as plain text."""
    return "\n\n".join(f"{v.headline}\n{v.description}" for v in alert.versions)


def _html(alert: alerts.Alert) -> str:
    """Every language as the alert's page shows it (each rendition is HTML in which every value
    was escaped), each part marked with its language and direction, so that a reader shows the
    Arabic right to left even in an entry that begins in English."""
    return "\n".join(
        f'<section lang="{v.locale}" dir="{v.direction}">\n{v.html}\n</section>'
        for v in alert.versions
    )


def _language(alert: alerts.Alert) -> str:
    return alert.versions[0].locale if alert.versions else "en"


class _EntryLanguage(BaseEntryExtension):
    """An Atom entry's `xml:lang`: the language it begins in (feedgen sets it on the feed
    only)."""

    def __init__(self) -> None:
        self.lang: str | None = None

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        if self.lang:
            entry.set(XML_LANG, self.lang)
        return entry


class _TypedLinks(BaseEntryExtension):
    """Entry links with their rel and type: feedgen 1.0.0 writes an entry link's href only
    (lkiesow/python-feedgen#135), and a CAP index must say which link is the CAP document."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        for attributes in self.links:
            # Unqualified like feedgen's own elements: they take the feed's Atom namespace.
            etree.SubElement(entry, "link", attributes)
        return entry


def _generator(feed_endpoint: str, changed: dt.datetime, subject: str) -> FeedGenerator:
    info = context.district().district
    fg = FeedGenerator()
    fg.id(absolute_url(feed_endpoint))
    fg.title(f"{info.name}: {subject}")
    fg.author({"name": info.name, **({"email": info.email} if info.email else {})})
    # RSS takes the last link given as the channel's link: the alerts page.
    fg.link(href=absolute_url(feed_endpoint), rel="self")
    fg.link(href=absolute_url("public.index"), rel="alternate", type="text/html")
    fg.description(f"{subject[:1].upper()}{subject[1:]} from {info.name}, most severe first.")
    fg.language("en")
    fg.updated(changed)
    fg.register_extension("entry_language", BaseExtension, _EntryLanguage, rss=False)
    fg.load_extension("dc", atom=False)  # an RSS item's dc:language
    return fg


def _add_alerts(fg: FeedGenerator, active: list[alerts.Alert]) -> None:
    for alert in active:
        page = absolute_url("public.alert", alert_id=alert.id)
        entry = fg.add_entry(order="append")
        entry.guid(page, permalink=True)  # also the Atom id
        entry.title(f"{alert.label}: {alert.headline}")
        entry.link(href=page)
        entry.published(alert.published_at)
        entry.updated(alert.published_at)
        entry.category(term=alert.cap.severity, label=alert.label)
        # Plain text as the RSS description and Atom summary; HTML marked with each language's
        # direction as the Atom content and RSS content:encoded.
        entry.description(_text(alert), isSummary=True)
        entry.content(_html(alert), type="html")
        entry.entry_language.lang = _language(alert)
        entry.dc.dc_language(_language(alert))


@feeds.get("/feeds/alerts.rss")
@cached(FEED_CACHE_CONTROL)
def rss() -> Response:
    active, changed = _current()
    fg = _generator("feeds.rss", changed, "current alerts")
    _add_alerts(fg, active)
    return Response(fg.rss_str(pretty=True), mimetype="application/rss+xml")


@feeds.get("/feeds/alerts.atom")
@cached(FEED_CACHE_CONTROL)
def atom() -> Response:
    active, changed = _current()
    fg = _generator("feeds.atom", changed, "current alerts")
    _add_alerts(fg, active)
    return Response(fg.atom_str(pretty=True), mimetype="application/atom+xml")


@feeds.get("/feeds/alerts.json")
@cached(FEED_CACHE_CONTROL)
def json_feed() -> Response:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1); `_cap` is this feed's extension."""
    active, _ = _current()
    district = context.district()
    info = district.district
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": f"{info.name}: current alerts",
        "home_page_url": absolute_url("public.index"),
        "feed_url": absolute_url("feeds.json_feed"),
        "description": f"Current alerts from {info.name}, most severe first.",
        "language": "en",
        "authors": [{"name": info.name, "url": info.alerts_url}],
        "items": [
            {
                "id": absolute_url("public.alert", alert_id=alert.id),
                "url": absolute_url("public.alert", alert_id=alert.id),
                "title": alert.headline,
                "content_text": _text(alert),
                "date_published": cap.cap_time(alert.published_at, district),
                "language": alert.versions[0].locale if alert.versions else "en",
                "tags": [alert.label, alert.cap.event],
                "_cap": {
                    "about": "https://docs.oasis-open.org/emergency/cap/v1.2/",
                    "document": absolute_url("feeds.cap_alert", alert_id=alert.id),
                    "msgType": alert.msg_type,
                    "event": alert.cap.event,
                    "severity": alert.cap.severity,
                    "urgency": alert.cap.urgency,
                    "expires": (
                        cap.cap_time(alert.expires_at, district) if alert.expires_at else None
                    ),
                },
            }
            for alert in active
        ],
    }
    return Response(safe_json(feed), mimetype="application/feed+json")


@feeds.get("/feeds/cap.atom")
@cached(FEED_CACHE_CONTROL)
def cap_index() -> Response:
    """One entry per active alert, linking its CAP document, and a Cancel entry for each alert
    withdrawn within the last day, so that alerting systems take it down."""
    now = request_now()
    district, catalog = context.district(), context.catalog()
    with context.reading() as session:
        active = alerts.active_alerts(session, district, catalog, now)
        withdrawn = alerts.withdrawn_alerts(session, district, catalog, now)
        changed = alerts.store_state(session, now).last_modified or EPOCH
    fg = _generator("feeds.cap_index", changed, "alerts in CAP 1.2")
    fg.register_extension("typed_links", BaseExtension, _TypedLinks, rss=False)
    for alert in [*active, *withdrawn]:
        document = absolute_url("feeds.cap_alert", alert_id=alert.id)
        cancel = alert.msg_type == "Cancel"
        entry = fg.add_entry(order="append")
        # The Cancel is an entry of its own, which aggregators have not seen before.
        entry.id(f"{document}#cancel" if cancel else document)
        entry.title(f"{'Withdrawn' if cancel else alert.label}: {alert.headline}")
        entry.typed_links.links += [
            {"rel": "alternate", "type": CAP_TYPE, "href": document},
            {
                "rel": "related",
                "type": "text/html",
                "href": absolute_url("public.alert", alert_id=alert.id),
            },
        ]
        entry.published(alert.published_at)
        entry.updated(alert.changed_at)
        entry.category(term=alert.msg_type)
        entry.content(_text(alert), type="text")
        entry.entry_language.lang = _language(alert)
    return Response(fg.atom_str(pretty=True), mimetype="application/atom+xml")


@feeds.get(f"/alerts/<{ALERT_ID}:alert_id>.cap.xml")
@cached(FEED_CACHE_CONTROL)
def cap_alert(alert_id: str) -> Response:
    district = context.district()
    with context.reading() as session:
        alert = alerts.get_alert(session, district, context.catalog(), alert_id)
        if alert is None:
            abort(404)
        document = alerts.cap_document(session, district, alert)
    return Response(document, mimetype=CAP_TYPE)
