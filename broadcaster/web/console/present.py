"""How things are named and counted on the console's pages and in its JSON."""

from __future__ import annotations

from typing import Any

from babel import Locale, UnknownLocaleError

from broadcaster.authoring.plan import summary as plan_summary
from broadcaster.core.languages import LANGUAGES, direction
from broadcaster.core.wording import count

CHANNEL_NAMES = {
    "x": "X",
    "facebook": "Facebook",
    "sms": "SMS",
    "voice": "Voice call",
    "email": "E-mail",
    "web": "Web site",
    "apprise": "Staff chat",
}
STATE_NAMES = {"partially_sent": "partially sent"}


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel)


def language_name(locale: str) -> str:
    """A language's name for staff, in English: "Spanish", "Chinese (Simplified)"."""
    known = LANGUAGES.get(locale)
    if known is not None:
        return known.english
    try:  # a regional variant ("Spanish (Mexico)") or a district's own language
        return Locale.parse(locale.replace("-", "_")).get_display_name("en") or locale
    except (UnknownLocaleError, ValueError):
        return locale


def state_name(state: str) -> str:
    return STATE_NAMES.get(state, state)


def counts(rendition: dict[str, Any]) -> str:
    """A rendition's size the way its platform counts it (a dumped authoring.views.Rendition)."""
    if rendition["channel"] == "x":
        return f"{rendition['weighted_length']}/280 weighted characters"
    if rendition["channel"] == "sms":
        text = f"{count(rendition['segments'], 'segment')}, {rendition['encoding']}"
        if rendition["ucs2_chars"]:
            text += f" (UCS-2 because of {' '.join(rendition['ucs2_chars'])})"
        return text
    if rendition["channel"] == "voice" and rendition.get("seconds") is not None:
        return f"about {rendition['seconds']:g}/60 seconds spoken"
    if rendition["channel"] == "facebook":
        return f"{rendition['length']:,}/63,206 characters"
    return f"{rendition['length']:,} characters"


def where(finding: dict[str, Any]) -> str:
    parts = [channel_name(finding["channel"]) if finding["channel"] else None, finding["locale"]]
    return " · ".join(p for p in parts if p) or "whole message"


HELPERS = {
    "channel_name": channel_name,
    "language_name": language_name,
    "text_direction": direction,  # a rendition's dir: "rtl" for Arabic
    "state_name": state_name,
    "counts": counts,
    "where": where,
    "plan_summary": plan_summary,
}
