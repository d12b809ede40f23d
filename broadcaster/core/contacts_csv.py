"""The contact list's CSV file (the district's export from the student information system):
its columns, the rules each value meets, and the `channels` column's grammar, read row by row
into what contacts.py writes."""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

import phonenumbers

from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.errors import BadInput
from broadcaster.core.languages import language
from broadcaster.core.text_safety import check_text
from channel_adapters import DeliveryError
from channel_adapters.email import check_address

COLUMNS = (
    "household",
    "phone",
    "landline",
    "email",
    "language",
    "schools",
    "routes",
    "grades",
    "channels",
    "opted_out",
)
REACHES = ("phone", "landline", "email")  # a file needs one of these columns, a row one value
HOUSEHOLD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
MAX_EMAILS = 5
# The words families and staff use for channels, in the `channels` column.
CHANNEL_WORDS = {
    "text": "sms",
    "sms": "sms",
    "call": "voice",
    "voice": "voice",
    "email": "email",
    "e-mail": "email",
}
CATEGORY = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
# Categories that reach every family on every channel it has, whatever it chose (FCC 16-88
# lets a school call and text about an emergency without prior consent).
EMERGENCY_CATEGORIES = frozenset({"emergency"})
LOCALE = re.compile(r"^[a-z]{2}(?:-[A-Z]{2})?$")
GRADE = re.compile(r"^(?:PK|TK|K|[1-9]|1[0-2])$", re.IGNORECASE)
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}
# NANP numbers reserved for fiction (555-0100 to 555-0199): valid for rehearsals and examples.
FICTIONAL = re.compile(r"^\+1\d{3}55501\d\d$")


def normalize_phone(raw: str, region: str) -> str | None:
    """E.164 for a number that can receive texts, or None."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.is_valid_number(number) or FICTIONAL.match(e164):
        return e164
    return None


def parse_csv(
    lines: Iterable[str], district: DistrictConfig, name: str
) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every row checked as it is read; the first bad one is refused with its line number."""
    reader = csv.DictReader(lines, strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise BadInput(f"{name} line 1: not a CSV header ({exc})") from None
    if not header:
        raise BadInput(f"{name} is empty: it needs a header line such as {','.join(COLUMNS)}")
    header = [h.strip().lower() for h in header]
    reader.fieldnames = header
    unknown = sorted(set(header) - set(COLUMNS))
    if unknown:
        raise BadInput(
            f"{name} line 1: unknown column {','.join(unknown)} (columns: {','.join(COLUMNS)})"
        )
    if not set(REACHES) & set(header):
        raise BadInput(f"{name} line 1: needs a phone, landline or email column")
    try:
        for record in reader:
            line = reader.line_num
            if None in record or any(v is None for v in record.values()):
                raise BadInput(f"{name} line {line}: expected {len(header)} fields")
            yield _row(record, district, f"{name} line {line}")
    except csv.Error as exc:
        raise BadInput(f"{name} line {reader.line_num}: {exc}") from None


def _row(
    record: dict[str, str], district: DistrictConfig, where: str
) -> tuple[dict[str, Any], bool]:
    # Refused by name, even where a parser below would skip the character: a file carrying
    # one is not what the district meant to export.
    for column, value in record.items():
        check_text(f"{where}, {column}", value)
    region = district.district.phone_region
    phone = _number(record.get("phone", ""), region, where, "phone")
    landline = _number(record.get("landline", ""), region, where, "landline")
    emails = _addresses(record.get("email", ""), where)
    if not (phone or landline or emails):
        raise BadInput(f"{where}: no phone, landline or email: give at least one")
    household = (record.get("household") or "").strip()
    if household and not HOUSEHOLD.match(household):
        raise BadInput(
            f"{where}: household {household[:70]!r} should be an id of letters, digits, "
            "'.', '_', ':' or '-' (at most 64)"
        )
    locale = (record.get("language") or "en").strip() or "en"
    if not LOCALE.match(locale):
        raise BadInput(f"{where}: language {locale!r} should be a code such as en or es")
    # Templates are written per language, not per region: a school system's "zh-CN" or "es-MX"
    # family reads the zh or es rendition. A language not published here is kept as given.
    if (known := language(locale)) is not None:
        locale = known.code
    schools = _items(record.get("schools", ""))
    for slug in schools:
        if district.school(slug) is None:
            raise BadInput(
                f"{where}: unknown school {slug!r} (schools: "
                f"{', '.join(s.slug for s in district.schools)})"
            )
    routes = _items(record.get("routes", ""))
    for route in routes:
        if district.route(route) is None:
            raise BadInput(f"{where}: unknown route {route!r}")
    grades = _items(record.get("grades", ""))
    for grade in grades:
        if not GRADE.match(grade):
            raise BadInput(f"{where}: grade {grade!r} should be PK, TK, K or 1 to 12")
    flag = (record.get("opted_out") or "").strip().lower()
    if flag not in YES | NO:
        raise BadInput(f"{where}: opted_out {flag!r} should be yes or no")
    contact = {
        # Without an id from the district, a row is the family of its first way to reach it
        # (rows sharing that number or address are one family); hashed, so no number shows.
        "household": household or _derived_household(phone or landline or emails[0]),
        "phone": phone,
        "landline": landline,
        "emails": emails,
        "prefers": preferences(record.get("channels", ""), where),
        "locale": locale,
        "schools": schools,
        "routes": routes,
        "grades": [g.upper() for g in grades],
    }
    return contact, flag in YES


def _number(raw: str, region: str, where: str, column: str) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    number = normalize_phone(raw, region)
    if number is None:
        what = "a phone number that can receive texts" if column == "phone" else "a phone number"
        raise BadInput(f"{where}: {column} {raw!r} is not {what}")
    return number


def _addresses(raw: str, where: str) -> list[str]:
    found: list[str] = []
    for item in _items(raw):
        try:
            address = check_address(item, "email")
        except DeliveryError:
            raise BadInput(
                f"{where}: email {item[:80]!r} is not an e-mail address (write name@example.org; "
                "several separated by ;)"
            ) from None
        if address.lower() not in (a.lower() for a in found):
            found.append(address)
    if len(found) > MAX_EMAILS:
        raise BadInput(f"{where}: at most {MAX_EMAILS} e-mail addresses a row, not {len(found)}")
    return found


def _derived_household(reach: str) -> str:
    return "~" + hashlib.sha256(reach.lower().encode()).hexdigest()[:20]


def preferences(raw: str, where: str) -> list[str]:
    """The `channels` column as tokens the database can match (contacts.wants()): `text;email`
    is text and e-mail for every category; `text;events=email` text, but e-mail for events;
    `events=` with nothing is no channel for events. Empty: every channel. Emergencies always use
    every channel, so they cannot be chosen."""
    default: list[str] | None = None
    tokens: list[str] = []
    for item in _items(raw):
        category, sep, words = item.partition("=")
        category = category.strip().lower() if sep else ""
        chosen = _channels(words if sep else item, where)
        if not sep:
            default = [*(default or []), *chosen]
            continue
        if not CATEGORY.match(category):
            raise BadInput(f"{where}: channels: {category[:40]!r} is not a category name")
        if category in EMERGENCY_CATEGORIES:
            raise BadInput(
                f"{where}: channels: {category} messages use every channel a family has; "
                f"remove {category}="
            )
        if category in tokens:
            raise BadInput(f"{where}: channels: {category} is given twice")
        tokens += [category, *(f"{category}:{c}" for c in chosen)]
    everyday = FAMILY_CHANNELS if default is None else default
    return [*(f"*:{c}" for c in FAMILY_CHANNELS if c in everyday), *tokens]


def _channels(words: str, where: str) -> list[str]:
    chosen: list[str] = []
    for word in (w.strip().lower() for w in words.split("+")):
        if not word:
            continue
        if word not in CHANNEL_WORDS:
            raise BadInput(
                f"{where}: channels: {word[:20]!r} should be text, call or email "
                "(e.g. text+email;events=email)"
            )
        chosen.append(CHANNEL_WORDS[word])
    return chosen


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(";") if item.strip()]
