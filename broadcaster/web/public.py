"""Public alert pages (no login): the active alerts, one alert in every language it was written
in, and `banner.js`, the script a district web site embeds to show the current alert."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import Blueprint, Response, abort, render_template, url_for

from broadcaster.web import alerts, cap, context
from broadcaster.web.http_cache import (
    FEED_CACHE_CONTROL,
    PAGE_CACHE_CONTROL,
    cached,
    request_now,
)

public = Blueprint("public", __name__)

# Alert ids are the web store's uuid hex; the fixed length also keeps `/alerts/<id>.cap.xml`
# (feeds) from matching here.
ALERT_ID = "string(length=32)"
# The stylesheet's severity colours: white text on each meets WCAG AA contrast.
SEVERITY_COLOURS = {
    "Extreme": "#8b0000",
    "Severe": "#b3261e",
    "Moderate": "#7a4a00",
    "Minor": "#1f5130",
    "Unknown": "#7a4a00",
}
BANNER_JS = (Path(__file__).parent / "templates" / "public" / "banner.js").read_text("utf-8")
BANNER_DATA = "/*ALERT*/null"


def absolute_url(endpoint: str, **values: Any) -> str:
    """A link that works from another site (feeds, the banner): under BROADCASTER_PUBLIC_URL
    when it is set, else the host the request came to."""
    public_url = context.settings().public_url
    if public_url:
        return public_url.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def local_time(moment: dt.datetime) -> str:
    """What a reader sees: district time, e.g. "Tuesday, March 3, 2026, 5:30 AM PST"."""
    zone = ZoneInfo(context.district().district.time_zone)
    return format_datetime(moment, "EEEE, MMMM d, y, h:mm a zzz", tzinfo=zone, locale="en")


@public.context_processor
def _time_helpers() -> dict[str, Any]:
    return {
        "local_time": local_time,
        "iso_time": lambda moment: cap.cap_time(moment, context.district()),
        "Status": alerts.Status,
    }


@public.get("/")
@cached(PAGE_CACHE_CONTROL)
def index() -> str:
    with context.reading() as session:
        active = alerts.active_alerts(session, context.district(), context.catalog(), request_now())
    return render_template("public/index.html", alerts=active)


@public.get(f"/alerts/<{ALERT_ID}:alert_id>")
@cached(PAGE_CACHE_CONTROL)
def alert(alert_id: str) -> str:
    district, catalog = context.district(), context.catalog()
    with context.reading() as session:
        found = alerts.get_alert(session, district, catalog, alert_id)
        if found is None:
            abort(404)
        # Corrections link both ways, titled with the other alert's headline.
        earlier = found.reply_to and alerts.get_alert(session, district, catalog, found.reply_to)
        newer = found.superseded_by and alerts.get_alert(
            session, district, catalog, found.superseded_by
        )
    return render_template(
        "public/alert.html",
        alert=found,
        status=found.status(request_now()),
        earlier=earlier or None,
        newer=newer or None,
    )


def safe_json(data: object) -> str:
    """JSON with `<`, `>` and `&` as \\u escapes: the same data, but no text in it can close a
    script or open markup wherever it ends up (a script, a sniffing browser)."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@public.get("/banner.js")
@cached(FEED_CACHE_CONTROL)
def banner() -> Response:
    with context.reading() as session:
        active = alerts.active_alerts(session, context.district(), context.catalog(), request_now())
    data = None
    if active:
        top = active[0]
        page = absolute_url("public.alert", alert_id=top.id)
        data = {
            "label": top.label,
            "colour": SEVERITY_COLOURS[top.cap.severity],
            "links": [
                {
                    "lang": v.locale,
                    "dir": v.direction,
                    "text": v.headline,
                    "url": f"{page}#lang-{v.locale}",
                }
                for v in top.versions
            ],
            "more": (
                {"text": f"All {len(active)} current alerts", "url": absolute_url("public.index")}
                if len(active) > 1
                else None
            ),
        }
    script = BANNER_JS.replace(BANNER_DATA, safe_json(data))
    return Response(script, mimetype="text/javascript")
