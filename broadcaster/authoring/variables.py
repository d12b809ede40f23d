"""Template variables: parse what a user typed into typed values, and show them per language.

Values are data. They are parsed and checked here and then passed to Jinja as plain strings, so a
value such as `{{ 7*7 }}` is printed as typed and never evaluated.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from babel import Locale
from babel.dates import format_date, format_time
from babel.lists import format_list

from broadcaster.authoring.catalog import Template, VariableSpec
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BadInput, Needed
from broadcaster.core.languages import babel_locale
from broadcaster.core.text_safety import check_text

# A date without its year (a message is about this week). English and Spanish as the district
# writes them; the others are CLDR's full date pattern without the year.
DATE_PATTERNS = {
    "en": "EEEE, MMMM d",
    "es": "EEEE d 'de' MMMM",
    "vi": "EEEE, d MMMM",
    "zh": "M月d日EEEE",
    "ar": "EEEE، d MMMM",
    "so": "EEEE, MMMM d",
}
# Beyond English and Spanish, drafts for the district's reviewer, like the template files.
ALL_SCHOOLS = {
    "en": "all schools",
    "es": "todas las escuelas",
    "vi": "tất cả các trường",
    "zh": "所有学校",
    "ar": "جميع المدارس",
    "so": "dhammaan dugsiyada",
}
DEFAULT_TEXT_MAX = 200
DEFAULT = "*"  # key of the value typed without a language, in a translated text variable
LISTED_CHOICES = 12  # a missing variable's hint lists its choices up to this many


def parse_values(template: Template, raw: Mapping[str, str], district: DistrictConfig) -> dict:
    """Check every value against the template's declared variables; return the stored form.

    The stored form is JSON-friendly (ISO dates, slug lists) so a message can be re-rendered later.
    A text variable may carry translations, typed as NAME.LOCALE (`reason.es=...`); it is then
    stored as {"*": typed value, LOCALE: translation}.
    """
    declared = {v.name: v for v in template.meta.variables}
    translations: dict[str, dict[str, str]] = {}
    for key in raw:
        name, _, locale = key.partition(".")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise BadInput(
                f"unknown variable {key!r} for template {template.name} (its variables: {known})"
            )
        if locale:
            if declared[name].type != "text" or locale not in template.locales:
                raise BadInput(
                    f"variable {key!r}: only text variables take a translation, as NAME.LOCALE "
                    f"with a language of the template ({', '.join(template.locales)})"
                )
            translations.setdefault(name, {})[locale] = raw[key]
        # Every type: a link, say, is published as typed.
        check_text(f"variable {key!r}", raw[key])
    values: dict[str, Any] = {}
    for spec in template.meta.variables:
        text = raw.get(spec.name)
        if text is None or text.strip() == "":
            if spec.required:
                # Each front door says how to give it; a choice lists its choices.
                needed = Needed(f"variables.{spec.name}", _choices(spec, district), _hint(spec))
                raise BadInput(f"missing variable {spec.name!r}", needed)
            if spec.name in translations:
                raise BadInput(f"variable {spec.name!r}: give the main value with its translations")
            values[spec.name] = None
            continue
        try:
            value = PARSERS[spec.type](text.strip(), spec, district)
            if spec.name in translations:
                value = {DEFAULT: value} | {
                    loc: _text(typed.strip(), spec, district)
                    for loc, typed in translations[spec.name].items()
                }
        except ValueError as exc:
            raise BadInput(f"variable {spec.name!r}: {exc}") from None
        values[spec.name] = value
    return values


def untranslated(template: Template, values: Mapping[str, Any], locale: str) -> list[str]:
    """Free-text variables that a non-English rendition shows as typed, untranslated."""
    if locale == "en":
        return []
    return [
        spec.name
        for spec in template.meta.variables
        if spec.type == "text" and not spec.choices and isinstance(values.get(spec.name), str)
    ]


def display_values(
    template: Template,
    values: Mapping[str, Any],
    district: DistrictConfig,
    locale: str,
    spoken: bool = False,
) -> dict[str, str | None]:
    """The stored values as the words a reader of `locale` sees, or with `spoken` (a voice
    rendition) as a listener hears them: times in words (see `spoken_time`); everything else
    as written, which a speech engine already reads naturally ("Tuesday, March 3", "martes 3
    de marzo", "Route 12", "90")."""
    shown: dict[str, str | None] = {}
    for spec in template.meta.variables:
        value = values.get(spec.name)
        if isinstance(value, dict):  # a text variable with translations
            value = value.get(locale, value[DEFAULT])
        show = (SPOKEN if spoken else {}).get(spec.type) or DISPLAY[spec.type]
        shown[spec.name] = None if value is None else show(value, district, locale)
    return shown


def _choices(spec: VariableSpec, district: DistrictConfig) -> tuple[str, ...]:
    """The values a missing variable takes, when they are a short list to show."""
    if spec.type == "school":
        found = [s.slug for s in district.schools]
    elif spec.type == "route":
        found = [r.id for r in district.routes]
    else:
        found = list(spec.choices or ())
    return tuple(found) if len(found) <= LISTED_CHOICES else ()


def _hint(spec: VariableSpec) -> str:
    return {
        "date": "YYYY-MM-DD",
        "time": "HH:MM",
        "datetime": "YYYY-MM-DDTHH:MM",
        "school": "SLUG",
        "schools": "SLUG,SLUG|all",
        "route": "ID",
        "routes": "ID,ID",
        "url": "https://...",
        "integer": "N",
    }.get(spec.type, "TEXT")


def _text(value: str, spec: VariableSpec, district: DistrictConfig) -> str:
    limit = spec.max_length or DEFAULT_TEXT_MAX
    if len(value) > limit:
        raise ValueError(f"is {len(value)} characters; the limit is {limit}")
    # Beyond text_safety's rules (checked first), a text value is one line.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("contains a line break or tab; write it on one line")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{value!r} is not allowed (choose one of: {', '.join(spec.choices)})")
    return unicodedata.normalize("NFC", value)


def _date(value: str, spec: VariableSpec, district: DistrictConfig) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"{value!r} is not a date (write YYYY-MM-DD, e.g. 2026-03-03)") from None


def _time(value: str, spec: VariableSpec, district: DistrictConfig) -> str:
    if not re.fullmatch(r"\d{1,2}:\d{2}", value):
        raise ValueError(f"{value!r} is not a time (write HH:MM on a 24-hour clock, e.g. 13:30)")
    try:
        return dt.time.fromisoformat(value.zfill(5)).strftime("%H:%M")
    except ValueError:
        raise ValueError(f"{value!r} is not a time of day (00:00 to 23:59)") from None


def _datetime(value: str, spec: VariableSpec, district: DistrictConfig) -> str:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date and time (write YYYY-MM-DDTHH:MM)") from None
    if parsed.tzinfo is not None:
        raise ValueError(
            f"give the district's local time without a zone ({district.district.time_zone})"
        )
    return parsed.strftime("%Y-%m-%dT%H:%M")


def _school(value: str, spec: VariableSpec, district: DistrictConfig) -> str:
    if district.school(value) is None:
        slugs = ", ".join(s.slug for s in district.schools)
        raise ValueError(f"{value!r} is not one of the district's schools ({slugs})")
    return value


def _schools(value: str, spec: VariableSpec, district: DistrictConfig) -> list[str]:
    if value.lower() == "all":
        return ["all"]
    slugs = _split(value)
    for slug in slugs:
        _school(slug, spec, district)
    return slugs


def _route(value: str, spec: VariableSpec, district: DistrictConfig) -> str:
    if district.route(value) is None:
        ids = ", ".join(r.id for r in district.routes)
        raise ValueError(f"{value!r} is not one of the district's bus routes ({ids})")
    return value


def _routes(value: str, spec: VariableSpec, district: DistrictConfig) -> list[str]:
    ids = _split(value)
    for route_id in ids:
        _route(route_id, spec, district)
    return ids


def _url(value: str, spec: VariableSpec, district: DistrictConfig) -> str:
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValueError(f"{value!r} is not a web address (write https://...)")
    if len(value) > (spec.max_length or 500):
        raise ValueError("is too long for a link")
    return value


def _integer(value: str, spec: VariableSpec, district: DistrictConfig) -> int:
    if not re.fullmatch(r"[+-]?\d{1,9}", value):
        raise ValueError(f"{value!r} is not a whole number")
    number = int(value)
    if spec.min is not None and number < spec.min:
        raise ValueError(f"{number} is below the minimum {spec.min}")
    if spec.max is not None and number > spec.max:
        raise ValueError(f"{number} is above the maximum {spec.max}")
    return number


def _split(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ValueError(f"{value!r} has an empty item (separate with commas, no trailing comma)")
    return list(dict.fromkeys(items))


def _show_date(value: str, district: DistrictConfig, locale: str) -> str:
    day = dt.date.fromisoformat(value)
    pattern = DATE_PATTERNS.get(locale.split("-")[0])
    return format_date(day, pattern or "long", locale=babel_locale(locale))


def _show_time(value: str, district: DistrictConfig, locale: str) -> str:
    shown = format_time(dt.time.fromisoformat(value), "short", locale=babel_locale(locale))
    # CLDR puts a narrow no-break space before "PM" (and Somali's "GD"); outside the GSM
    # alphabet, it would turn every SMS that mentions a time into UCS-2 (67 characters a segment
    # instead of 153).
    return shown.replace("\u202f", " ").replace("\xa0", " ")


def _show_datetime(value: str, district: DistrictConfig, locale: str) -> str:
    date_part, time_part = value.split("T")
    # CLDR's order and joint: "{1}, {0}" in English, "{1} {0}" in Chinese, "{1}، {0}" in Arabic.
    joint = str(Locale.parse(babel_locale(locale)).datetime_formats["medium"])
    return joint.format(
        _show_time(time_part, district, locale), _show_date(date_part, district, locale)
    )


def _show_school(value: str, district: DistrictConfig, locale: str) -> str:
    school = district.school(value)
    return school.display(locale) if school else value


def _show_schools(value: list[str], district: DistrictConfig, locale: str) -> str:
    if value == ["all"]:
        return ALL_SCHOOLS.get(locale.split("-")[0], ALL_SCHOOLS["en"])
    names = [_show_school(slug, district, locale) for slug in value]
    return format_list(names, locale=babel_locale(locale))


def _show_route(value: str, district: DistrictConfig, locale: str) -> str:
    route = district.route(value)
    return route.display(locale) if route else value


def _show_routes(value: list[str], district: DistrictConfig, locale: str) -> str:
    names = [_show_route(r, district, locale) for r in value]
    return format_list(names, locale=babel_locale(locale))


def _show_plain(value: Any, district: DistrictConfig, locale: str) -> str:
    return str(value)


# Times in words for voice renditions. A speech engine reads "12:30 PM" as "twelve thirty P M"
# and the Spanish 24-hour "13:30" as "trece treinta"; families say "twelve thirty in the
# afternoon" and "la una y media de la tarde". Babel has no spelled-out numbers, and a clock
# needs only 1 to 59, so the words are here.
_EN_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}
_ES_WORDS = [
    "cero",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciséis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidós",
    "veintitrés",
    "veinticuatro",
    "veinticinco",
    "veintiséis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
]
_ES_TENS = {3: "treinta", 4: "cuarenta", 5: "cincuenta"}


def _en_number(n: int) -> str:
    """1 to 59 in English words."""
    if n < 20:
        return _EN_WORDS[n]
    tens, ones = divmod(n, 10)
    return _EN_TENS[tens] + (f"-{_EN_WORDS[ones]}" if ones else "")


def _es_number(n: int) -> str:
    """1 to 59 in Spanish words."""
    if n < 30:
        return _ES_WORDS[n]
    tens, ones = divmod(n, 10)
    return _ES_TENS[tens] + (f" y {_ES_WORDS[ones]}" if ones else "")


def spoken_time(value: str, locale: str) -> str | None:
    """A 24-hour "HH:MM" said as words on a 12-hour clock, or None for a language without
    spoken forms here (Vietnamese, Chinese, Arabic, Somali: the voice reads Babel's written
    time, "13:30", "1:30 م", which their speech engines say as a time).

    English: "noon", "midnight", "one o'clock in the afternoon", "nine oh five in the morning",
    "twelve thirty in the afternoon" (templates write "at {{ time }}").
    Spanish: with its article, since "la una" and "las dos" differ: "la una de la tarde", "las
    doce y media del mediodía", "las nueve y cuarto de la mañana" (templates write
    "a {{ time }}")."""
    hour, minute = (int(part) for part in value.split(":"))
    twelve = hour % 12 or 12
    language = locale.split("-")[0]
    if language == "en":
        if minute == 0 and hour in (0, 12):
            return "midnight" if hour == 0 else "noon"
        if minute == 0:
            said = f"{_en_number(twelve)} o'clock"
        elif minute < 10:
            said = f"{_en_number(twelve)} oh {_en_number(minute)}"
        else:
            said = f"{_en_number(twelve)} {_en_number(minute)}"
        if hour < 12:
            period = "in the morning"
        elif hour < 18:
            period = "in the afternoon"
        else:
            period = "in the evening"
        return f"{said} {period}"
    if language == "es":
        said = ("la una" if twelve == 1 else f"las {_es_number(twelve)}") + {
            0: "",
            15: " y cuarto",
            30: " y media",
        }.get(minute, f" y {_es_number(minute)}")
        if hour == 0 or hour >= 20:
            period = "de la noche"
        elif hour < 6:
            period = "de la madrugada"
        elif hour < 12:
            period = "de la mañana"
        elif hour == 12:
            period = "del mediodía"
        else:
            period = "de la tarde"
        return f"{said} {period}"
    return None


def _say_time(value: str, district: DistrictConfig, locale: str) -> str:
    return spoken_time(value, locale) or _show_time(value, district, locale)


def _say_datetime(value: str, district: DistrictConfig, locale: str) -> str:
    date_part, time_part = value.split("T")
    said = spoken_time(time_part, locale)
    if said is None:
        return _show_datetime(value, district, locale)
    at = "a" if locale.split("-")[0] == "es" else "at"
    return f"{_show_date(date_part, district, locale)}, {at} {said}"


PARSERS: dict[str, Callable[[str, VariableSpec, DistrictConfig], Any]] = {
    "text": _text,
    "date": _date,
    "time": _time,
    "datetime": _datetime,
    "school": _school,
    "schools": _schools,
    "route": _route,
    "routes": _routes,
    "url": _url,
    "integer": _integer,
}
DISPLAY: dict[str, Callable[[Any, DistrictConfig, str], str]] = {
    "text": _show_plain,
    "date": _show_date,
    "time": _show_time,
    "datetime": _show_datetime,
    "school": _show_school,
    "schools": _show_schools,
    "route": _show_route,
    "routes": _show_routes,
    "url": _show_plain,
    "integer": _show_plain,
}
# Voice renditions: the types said differently from how they are shown; the others as shown.
SPOKEN: dict[str, Callable[[Any, DistrictConfig, str], str]] = {
    "time": _say_time,
    "datetime": _say_datetime,
}
