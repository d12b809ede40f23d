"""The district's contact list (a CSV export from the student information system), opt-outs,
and audience expressions that select recipients from it."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Contact, OptOut, User
from broadcaster.core.permissions import require
from broadcaster.core.text_safety import check_text

COLUMNS = ("phone", "language", "schools", "routes", "grades", "opted_out")
REQUIRED_COLUMNS = {"phone"}
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


@dataclass(frozen=True)
class ImportResult:
    rows: int
    phones: int
    opted_out: int
    replaced: int


def import_csv(session: Session, district: DistrictConfig, path: Path, actor: User) -> ImportResult:
    """Replace the contact list with this file, all of it or nothing.

    A "yes" in `opted_out` adds an opt-out; a "no" never removes one, because an opt-out the
    family sent by text (STOP) outranks the district's export.
    """
    require(actor, "import_contacts", district)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path.name} is not UTF-8 text; export the CSV as UTF-8") from None
    rows = parse_csv(text, district, path.name)
    replaced = session.scalar(select(func.count()).select_from(Contact)) or 0
    session.execute(delete(Contact))
    if rows:
        session.execute(insert(Contact), [r[0] for r in rows])
    opted = {r[0]["phone"] for r in rows if r[1]}
    known = set(session.scalars(select(OptOut.phone).where(OptOut.phone.in_(opted))))
    for phone in sorted(opted - known):
        session.add(OptOut(phone=phone, source="contacts import"))
    result = ImportResult(
        rows=len(rows),
        phones=len({r[0]["phone"] for r in rows}),
        opted_out=len(opted),
        replaced=replaced,
    )
    ledger.append(
        session,
        "contacts.imported",
        {
            "file": path.name,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "rows": result.rows,
            "phones": result.phones,
            "opted_out": result.opted_out,
            "replaced_rows": replaced,
        },
        actor=actor.name,
    )
    return result


def parse_csv(text: str, district: DistrictConfig, name: str) -> list[tuple[dict[str, Any], bool]]:
    """Every row checked; the first bad one is refused with its line number."""
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise BadInput(f"{name} line 1: not a CSV header ({exc})") from None
    if not header:
        raise BadInput(f"{name} is empty: it needs a header line {','.join(COLUMNS)}")
    header = [h.strip().lower() for h in header]
    reader.fieldnames = header
    missing = REQUIRED_COLUMNS - set(header)
    unknown = set(header) - set(COLUMNS)
    if missing or unknown:
        problem = (
            f"missing {','.join(sorted(missing))}"
            if missing
            else (f"unknown {','.join(sorted(unknown))}")
        )
        raise BadInput(f"{name} line 1: columns must be {','.join(COLUMNS)} ({problem})")
    rows: list[tuple[dict[str, Any], bool]] = []
    try:
        for record in reader:
            line = reader.line_num
            if None in record or any(v is None for v in record.values()):
                raise BadInput(f"{name} line {line}: expected {len(header)} fields")
            rows.append(_row(record, district, f"{name} line {line}"))
    except csv.Error as exc:
        raise BadInput(f"{name} line {reader.line_num}: {exc}") from None
    return rows


def _row(
    record: dict[str, str], district: DistrictConfig, where: str
) -> tuple[dict[str, Any], bool]:
    # Refused by name, even where a parser below would skip the character: a file carrying
    # one is not what the district meant to export.
    for column, value in record.items():
        check_text(f"{where}, {column}", value)
    raw_phone = record.get("phone", "").strip()
    phone = normalize_phone(raw_phone, district.district.phone_region)
    if phone is None:
        raise BadInput(f"{where}: {raw_phone!r} is not a phone number that can receive texts")
    locale = (record.get("language") or "en").strip() or "en"
    if not LOCALE.match(locale):
        raise BadInput(f"{where}: language {locale!r} should be a code such as en or es")
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
        "phone": phone,
        "locale": locale,
        "schools": schools,
        "routes": routes,
        "grades": [g.upper() for g in grades],
    }
    return contact, flag in YES


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(";") if item.strip()]


# --- audiences ---------------------------------------------------------------------------------

AUDIENCE_KINDS = ("school", "route", "grade")


@dataclass(frozen=True)
class Audience:
    """Terms of one kind are alternatives, kinds narrow each other:
    `school:a school:b route:12` is everyone at school a or b who rides route 12."""

    everyone: bool
    terms: dict[str, frozenset[str]]

    def matches(self, contact: Contact) -> bool:
        if self.everyone:
            return True
        fields = {"school": contact.schools, "route": contact.routes, "grade": contact.grades}
        return all(set(fields[kind]) & wanted for kind, wanted in self.terms.items())

    def describe(self) -> str:
        if self.everyone:
            return "all"
        return " ".join(
            f"{kind}:{v}" for kind, values in self.terms.items() for v in sorted(values)
        )


def parse_audience(expression: str, district: DistrictConfig) -> Audience:
    words = expression.split()
    if not words:
        raise BadInput("--audience is empty: use all, or terms like school:lincoln-hs route:12")
    if words == ["all"]:
        return Audience(True, {})
    terms: dict[str, set[str]] = {}
    for word in words:
        kind, sep, value = word.partition(":")
        if not sep or kind not in AUDIENCE_KINDS or not value:
            raise BadInput(
                f"--audience term {word!r}: write all, or school:SLUG, route:ID, grade:N"
            )
        if kind == "school" and district.school(value) is None:
            raise BadInput(f"--audience: unknown school {value!r}")
        if kind == "route" and district.route(value) is None:
            raise BadInput(f"--audience: unknown route {value!r}")
        if kind == "grade":
            if not GRADE.match(value):
                raise BadInput(f"--audience: grade {value!r} should be PK, TK, K or 1 to 12")
            value = value.upper()
        terms.setdefault(kind, set()).add(value)
    return Audience(False, {k: frozenset(v) for k, v in terms.items()})


def recipients(session: Session, audience: Audience) -> dict[str, str]:
    """phone -> language for everyone the audience selects, one entry per phone number, opted-out
    numbers left out. A phone shared by several students keeps its first row's language."""
    opted_out = set(session.scalars(select(OptOut.phone)))
    chosen: dict[str, str] = {}
    for contact in session.scalars(select(Contact).order_by(Contact.id)):
        if (
            contact.phone not in opted_out
            and contact.phone not in chosen
            and audience.matches(contact)
        ):
            chosen[contact.phone] = contact.locale
    return chosen
