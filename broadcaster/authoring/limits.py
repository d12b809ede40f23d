"""Measure each rendition the way its platform counts it.

- X: weighted length by the twitter-text v3 rules (URLs 23, CJK and emoji 2), from the
  `twitter-text-parser` package, which passes the official conformance file.
- SMS: GSM-7 when every character is in the GSM 03.38 alphabet (the `gsm0338` codec; the
  extension characters ^{}\\[~]|€ encode as two septets), otherwise UCS-2 for the whole text.
  One segment holds 160 septets or 70 UTF-16 units; a concatenated segment 153 or 67, and a
  two-septet character or a surrogate pair is never split across segments.
- Facebook: 63,206 characters (UTF-16 units, as the Graph API counts them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
from twitter_text import parse_tweet

X_LIMIT = 280
FACEBOOK_LIMIT = 63_206
SMS_SINGLE = {"GSM-7": 160, "UCS-2": 70}
SMS_CONCAT = {"GSM-7": 153, "UCS-2": 67}


def measure_x(text: str) -> dict[str, Any]:
    parsed = parse_tweet(text)
    return {
        "length": len(text),
        "weighted_length": parsed.weightedLength,
        "limit": X_LIMIT,
        "valid": parsed.valid,
    }


def gsm_cost(char: str) -> int | None:
    """Septets for one character in GSM-7, or None when GSM-7 cannot carry it."""
    try:
        return len(char.encode("gsm03.38"))
    except UnicodeEncodeError:
        return None


def measure_sms(text: str) -> dict[str, Any]:
    gsm_costs = [gsm_cost(char) for char in text]
    ucs2_chars = list(
        dict.fromkeys(c for c, cost in zip(text, gsm_costs, strict=True) if cost is None)
    )
    if ucs2_chars:
        encoding = "UCS-2"
        costs = [2 if ord(char) > 0xFFFF else 1 for char in text]
    else:
        encoding = "GSM-7"
        costs = cast(list[int], gsm_costs)  # no None: every character has a GSM-7 cost
    units = sum(costs)
    return {
        "length": len(text),
        "encoding": encoding,
        "units": units,
        "segments": _segments(costs, encoding),
        "ucs2_chars": ucs2_chars,
    }


def _segments(costs: list[int], encoding: str) -> int:
    if sum(costs) <= SMS_SINGLE[encoding]:
        return 1 if costs else 0
    room = SMS_CONCAT[encoding]
    segments, used = 1, 0
    for cost in costs:
        if used + cost > room:
            segments, used = segments + 1, 0
        used += cost
    return segments


def measure_facebook(text: str) -> dict[str, Any]:
    units = len(text.encode("utf-16-le")) // 2
    return {"length": len(text), "units": units, "limit": FACEBOOK_LIMIT}


def measure_web(text: str) -> dict[str, Any]:
    return {"length": len(text)}


MEASURES: dict[str, Callable[[str], dict[str, Any]]] = {
    "x": measure_x,
    "sms": measure_sms,
    "facebook": measure_facebook,
    "web": measure_web,
}


def measure(channel: str, text: str) -> dict[str, Any]:
    return MEASURES[channel](text)


def over_limit(channel: str, metrics: dict[str, Any], sms_max_segments: int) -> str | None:
    """Why the rendition does not fit its channel, or None when it fits."""
    if channel == "x" and metrics["weighted_length"] > X_LIMIT:
        return f"X post is {metrics['weighted_length']} weighted characters; the limit is {X_LIMIT}"
    if channel == "x" and not metrics["valid"] and metrics["length"]:
        return "X refuses this post: it contains characters X does not accept (e.g. U+FFFE)"
    if channel == "facebook" and metrics["units"] > FACEBOOK_LIMIT:
        return f"Facebook post is {metrics['units']} characters; the limit is {FACEBOOK_LIMIT}"
    if channel == "sms" and metrics["segments"] > sms_max_segments:
        return (
            f"SMS is {metrics['segments']} {metrics['encoding']} segments; the district allows "
            f"{sms_max_segments}"
            + (
                f" (UCS-2 because of {''.join(metrics['ucs2_chars'][:5])})"
                if metrics["ucs2_chars"]
                else ""
            )
        )
    return None
