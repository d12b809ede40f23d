"""The district's contact list (a CSV export from the student information system), opt-outs,
and audience expressions that select recipients from it."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

import phonenumbers
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    true,
)
from sqlalchemy.orm import Session, aliased

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Contact, ContactList, Message, OptOut, User, utcnow
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
# Imports take this PostgreSQL advisory lock, so that two at once write two versions one after
# the other (SQLite's BEGIN IMMEDIATE serializes them already). Approvals take no lock: see
# drop_unused_versions.
_IMPORT_LOCK = 0x636F6E74  # "cont"
# A list replaced this long ago can no longer be the one an approval still in its transaction
# read as current (approvals take well under a second; PostgreSQL ends a transaction idle for
# Settings.db_lost_client_seconds).
SUPERSEDED_GRACE = dt.timedelta(minutes=10)
IMPORT_CHUNK = 5000  # contact rows parsed and inserted at a time


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
    """Replace the contact list with this file, all of it or nothing: a new version, which
    messages approved from now on text. A message still expanding from an older version keeps
    it until it is done, and older lists go a little later (drop_unused_versions).

    A "yes" in `opted_out` adds an opt-out; a "no" never removes one, because an opt-out the
    family sent by text (STOP) outranks the district's export.
    """
    require(actor, "import_contacts", district)
    digest = _sha256(path)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_IMPORT_LOCK)))
    current = current_version(session)
    replaced = (
        session.scalar(select(func.count()).select_from(Contact).where(Contact.version == current))
        or 0
    )
    version = current + 1
    session.add(ContactList(version=version))
    session.flush()
    # Read, checked and written a chunk at a time (a district's list may be a million rows); a
    # bad row anywhere rolls the whole transaction back.
    written, opted = 0, set[str]()
    with _open_text(path) as handle:
        rows = parse_csv(handle, district, path.name)
        while chunk := list(islice(rows, IMPORT_CHUNK)):
            session.execute(insert(Contact), [{**row, "version": version} for row, _ in chunk])
            opted.update(row["phone"] for row, out in chunk if out)
            written += len(chunk)
    drop_unused_versions(session)
    known = set(session.scalars(select(OptOut.phone).where(OptOut.phone.in_(opted))))
    for phone in sorted(opted - known):
        session.add(OptOut(phone=phone, source="contacts import"))
    phones = session.scalar(
        select(func.count(func.distinct(Contact.phone))).where(Contact.version == version)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Statistics for the new rows now, not when autovacuum gets to them: with a million
        # rows it does not know of, the planner read every remaining row for each page of an
        # expansion (826 ms a page half-way through a million; 0.7 ms once analysed).
        session.execute(text("ANALYZE contacts"))
    result = ImportResult(rows=written, phones=phones or 0, opted_out=len(opted), replaced=replaced)
    ledger.append(
        session,
        "contacts.imported",
        {
            "file": path.name,
            "sha256": digest,
            "rows": result.rows,
            "phones": result.phones,
            "opted_out": result.opted_out,
            "replaced_rows": replaced,
            "version": version,
        },
        actor=actor.name,
    )
    return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    return digest.hexdigest()


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    """The file as UTF-8 text (a byte-order mark allowed); a byte that is not UTF-8, wherever it
    is, is the district's export setting, said so."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield handle
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path.name} is not UTF-8 text; export the CSV as UTF-8") from None


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

    def where(self, dialect: str) -> ColumnElement[bool]:
        """The SQL condition a contact row meets when the audience selects it."""
        if self.everyone:
            return true()
        fields = {"school": Contact.schools, "route": Contact.routes, "grade": Contact.grades}
        return and_(
            *(_has_any(fields[kind], wanted, dialect) for kind, wanted in self.terms.items())
        )

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


def _has_any(column: Any, wanted: frozenset[str], dialect: str) -> ColumnElement[bool]:
    """The JSON list in `column` holds one of `wanted`."""
    elements = (
        func.json_array_elements_text(column) if dialect == "postgresql" else func.json_each(column)
    ).table_valued("value")
    return exists(select(1).select_from(elements).where(elements.c.value.in_(sorted(wanted))))


# --- versions and the audience's rows ----------------------------------------------------------


def current_version(session: Session) -> int:
    """The contact list messages approved now text: the last import's."""
    return session.scalar(select(func.max(ContactList.version))) or 0


def drop_unused_versions(session: Session, now: dt.datetime | None = None) -> int:
    """Delete the contacts of replaced lists that no expanding message reads, once they were
    replaced SUPERSEDED_GRACE ago: an approval that read one as current just before the import
    committed has committed its message (which names it) by then. Returns the rows deleted."""
    replaced_before = (now or utcnow()) - SUPERSEDED_GRACE
    newer = aliased(ContactList)
    superseded = select(ContactList.version).where(
        exists().where(newer.version > ContactList.version, newer.imported_at < replaced_before)
    )
    needed = select(Message.contacts_version).where(
        Message.expanding, Message.contacts_version.is_not(None)
    )
    result = session.execute(
        delete(Contact)
        .where(Contact.version.in_(superseded), Contact.version.not_in(needed))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def selected(session: Session, audience: Audience, version: int) -> Select[int, str, str]:
    """The audience's contact rows in one version, opted-out numbers left out."""
    dialect = session.get_bind().dialect.name
    return select(Contact.id, Contact.phone, Contact.locale).where(
        Contact.version == version,
        audience.where(dialect),
        ~exists().where(OptOut.phone == Contact.phone),
    )


def languages(session: Session, audience: Audience, version: int) -> dict[str, int]:
    """language -> phones the audience selects in this version, each phone under its first
    row's language: counted by the database, with no row loaded here, and once per transaction
    (a compose's check, plan and view, or a trigger's compose and approval, ask alike: at a
    million phones a count is most of an approval's time, and they agree on one figure)."""
    key = (audience.describe(), version)
    counted = _counted(session)
    if key not in counted:
        counted[key] = _languages(session, audience, version)
    return dict(counted[key])


def _counted(session: Session) -> dict[tuple[str, int], dict[str, int]]:
    """This transaction's audience counts (a new transaction starts with none)."""
    transaction = session.get_transaction()
    held = session.info.get("audience_counts")
    if held is None or held[0] is not transaction:
        held = session.info["audience_counts"] = (transaction, {})
    counts: dict[tuple[str, int], dict[str, int]] = held[1]
    return counts


def _languages(session: Session, audience: Audience, version: int) -> dict[str, int]:
    first = (
        selected(session, audience, version)
        .add_columns(
            func.row_number().over(partition_by=Contact.phone, order_by=Contact.id).label("nth")
        )
        .subquery()
    )
    rows = session.execute(
        select(first.c.locale, func.count()).where(first.c.nth == 1).group_by(first.c.locale)
    ).all()
    return {locale: n for locale, n in rows}
