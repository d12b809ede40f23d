"""Measure each rendition the way its platform counts it.

- X: weighted length by the twitter-text v3 rules (URLs 23, CJK and emoji 2), from the
  `twitter-text-parser` package, which passes the official conformance file.
- SMS: GSM-7 when every character is in the GSM 03.38 alphabet (the `gsm0338` codec; the
  extension characters ^{}\\[~]|€ encode as two septets), otherwise UCS-2 for the whole text.
  One segment holds 160 septets or 70 UTF-16 units; a concatenated segment 153 or 67, and a
  two-septet character or a surrogate pair is never split across segments.
- Facebook: 63,206 characters (UTF-16 units, as the Graph API counts them).
- Voice: how long a speech engine takes to say it (`measure_voice`: its words, and Chinese by
  its characters), at most 60 seconds; at most 1,500 characters as TwiML carries it (Twilio
  takes 4,000 for the whole call, which says the text twice, then a replay prompt, in markup);
  and no web or e-mail address, which a call would read out letter by letter and a listener
  cannot click.
- E-mail: a first line `Subject: ...` and an empty line before the body; the subject at most 150
  characters (mail clients show only its start) with no control or invisible formatting
  character (a line break there would start another header: the adapter refuses it); the body
  at most 100,000 bytes of UTF-8 (quoted-printable and the HTML part make the message a few
  times that, well under the adapter's 10,000,000-byte limit).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from html import escape
from typing import Any, cast

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
from twitter_text import extract_urls_with_indices, parse_tweet

X_LIMIT = 280
FACEBOOK_LIMIT = 63_206
SMS_SINGLE = {"GSM-7": 160, "UCS-2": 70}
SMS_CONCAT = {"GSM-7": 153, "UCS-2": 67}
# 150 words a minute: Amazon Polly's neural voices (Twilio's <Say voice="Polly.…">) read plain
# text at their default rate at about 150 to 170 words a minute, pauses at sentence ends included;
# the slow end of that keeps the estimate on the safe side of the limit. Spanish says the same
# thing in more, but not slower, words, so one rate serves both languages, and Arabic and Somali
# too; a Vietnamese word is one syllable, said faster, so the rate overestimates it (the safe
# side). Chinese has no spaces between words: it is counted by its characters (below).
VOICE_WPM = 150
VOICE_SECONDS = 60
# Twilio's inline TwiML is at most 4,000 characters (channel_adapters/voice.py TWIML_MAX). The
# call says the text twice, then a short replay prompt, inside about 400 characters of markup
# (the XML declaration, <Response>, three <Say> with language and voice, a <Gather> with its
# action address): 2 x 1,500 leaves room for all of it.
VOICE_CHARS = 1500
EMAIL_SUBJECT_MAX = 150
EMAIL_BODY_MAX = 100_000  # bytes of UTF-8
# A staff chat post (apprise): ntfy takes 4,096 bytes of message, Slack and Teams far more;
# Apprise splits or cuts what a service cannot take, so a longer post would arrive cut.
STAFF_MAX_BYTES = 4000
_SUBJECT_LINE = re.compile(r"\ASubject:[ \t]*([^\r\n]*)\r?\n\r?\n", re.IGNORECASE)
_SPOKEN = re.compile(
    r"(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)|(?P<number>\d+)|(?P<symbol>[&%#@$€£+=/])"
)
# A run of letters longer than this is not one word said in one breath (a name run together,
# or a value typed without spaces); it counts at the average length of a written word.
_LONG_WORD, _LETTERS_PER_WORD = 12, 6
# Chinese is written without spaces, one syllable a character: a Mandarin voice says about four
# to five characters a second, so each counts as 150 / 60 / 4 = 0.625 of a word (the slow end,
# as above). Counted as words, a sentence of them would be one "long word" said in seconds.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_WORDS_PER_HAN = 0.625
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SCHEME = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+|\bwww\.\S+", re.IGNORECASE)


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


def spoken_words(text: str) -> float:
    """About how many words a speech engine says for the text.

    A word is a run of letters (an apostrophe inside it included: "o'clock", "child's"); a
    run longer than 12 letters counts one word per 6 letters. A number counts one word per digit:
    generous for "2026" (three words said) and right for a phone number read digit by digit.
    A symbol a voice reads as a word (& % # @ $ € £ + = /) counts one; punctuation, none.
    A Chinese character counts 0.625 (four a second).
    """
    words = len(_HAN.findall(text)) * _WORDS_PER_HAN
    for match in _SPOKEN.finditer(_HAN.sub(" ", text)):
        if match["word"]:
            letters = len(match["word"])
            words += 1 if letters <= _LONG_WORD else letters / _LETTERS_PER_WORD
        elif match["number"]:
            words += len(match["number"])
        else:
            words += 1
    # An emoji or another pictograph is said by its name, or skipped: one word.
    return words + sum(1 for char in text if unicodedata.category(char) == "So")


def addresses(text: str) -> int:
    """Web and e-mail addresses in the text: with a scheme or www., an e-mail, or a host name
    twitter-text finds (riversideusd.org/alerts) whose last label is in lower case, so that a
    sentence typed without its space ("the gym.It reopens") is not one."""
    found = len(_SCHEME.findall(text)) + len(_EMAIL.findall(text))
    rest = _EMAIL.sub(" ", _SCHEME.sub(" ", text))
    for url in extract_urls_with_indices(rest):
        host = url["url"].split("/")[0]
        if "/" in url["url"] or host.rsplit(".", 1)[-1].islower():
            found += 1
    return found


def measure_voice(text: str) -> dict[str, Any]:
    words = spoken_words(text)
    return {
        "length": len(text),
        # As the TwiML carries it: & < > are written &amp; &lt; &gt;.
        "twiml_length": len(escape(text, quote=False)),
        "words": math.ceil(words),
        "seconds": round(words * 60 / VOICE_WPM, 1),
        "limit": VOICE_SECONDS,
        "addresses": addresses(text),
    }


def measure_email(text: str) -> dict[str, Any]:
    """The subject (from the `Subject:` line) and the body, as the e-mail adapter splits them."""
    match = _SUBJECT_LINE.match(text)
    subject = match.group(1).strip() if match else None
    body = text[match.end() :] if match else text
    return {
        "length": len(text),
        "subject": subject,
        "subject_length": len(subject) if subject is not None else 0,
        "subject_controls": sum(
            1 for c in subject or "" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
        ),
        "body_bytes": len(body.encode("utf-8")),
    }


def measure_staff(text: str) -> dict[str, Any]:
    """A staff post: its title (the first line, when an empty line follows) and its size."""
    first, sep, _ = text.partition("\n\n")
    title = first if sep and "\n" not in first else ""
    return {"length": len(text), "title": title, "bytes": len(text.encode("utf-8"))}


def measure_web(text: str) -> dict[str, Any]:
    return {"length": len(text)}


MEASURES: dict[str, Callable[[str], dict[str, Any]]] = {
    "x": measure_x,
    "sms": measure_sms,
    "facebook": measure_facebook,
    "web": measure_web,
    "voice": measure_voice,
    "email": measure_email,
    "apprise": measure_staff,
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
    if channel == "voice" and metrics["addresses"]:
        return (
            "voice message contains a web or e-mail address, which a call reads out letter by "
            'letter; say where to look in words (e.g. "the district web site")'
        )
    if channel == "voice" and metrics["seconds"] > VOICE_SECONDS:
        return (
            f"voice message takes about {metrics['seconds']:g} seconds to say; "
            f"the limit is {VOICE_SECONDS}"
        )
    if channel == "voice" and metrics["twiml_length"] > VOICE_CHARS:
        return (
            f"voice message is {metrics['twiml_length']} characters; the limit is {VOICE_CHARS} "
            "(Twilio takes 4,000 for the call, which says it twice)"
        )
    if channel == "email":
        return _email_over(metrics)
    if channel == "apprise" and metrics["bytes"] > STAFF_MAX_BYTES:
        return f"staff post is {metrics['bytes']} bytes; the limit is {STAFF_MAX_BYTES}"
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


def _email_over(metrics: dict[str, Any]) -> str | None:
    if metrics["subject"] is None:
        return "e-mail has no subject: its first line must be 'Subject: ...', then an empty line"
    if not metrics["subject"]:
        return "e-mail subject is empty"
    if metrics["subject_controls"]:
        return "e-mail subject contains a control or invisible formatting character"
    if metrics["subject_length"] > EMAIL_SUBJECT_MAX:
        return (
            f"e-mail subject is {metrics['subject_length']} characters; "
            f"the limit is {EMAIL_SUBJECT_MAX}"
        )
    if metrics["body_bytes"] > EMAIL_BODY_MAX:
        return f"e-mail body is {metrics['body_bytes']} bytes; the limit is {EMAIL_BODY_MAX}"
    return None
