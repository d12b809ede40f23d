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
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Contact, ContactList, Message, OptOut, User, utcnow
from broadcaster.core.permissions import require
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
    households: int
    phones: int  # mobiles: texts and calls
    landlines: int
    emails: int
    opted_out: int
    replaced: int

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.households} families, {self.phones} mobile numbers, "
            f"{self.landlines} landlines, {self.emails} e-mail addresses, {self.opted_out} "
            f"opted out (replaced {self.replaced} rows)"
        )


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
            opted.update(
                number for row, out in chunk if out for number in (row["phone"], row["landline"])
            )
            written += len(chunk)
    drop_unused_versions(session)
    opted.discard(None)
    known = set(session.scalars(select(OptOut.phone).where(OptOut.phone.in_(opted))))
    for phone in sorted(opted - known):
        session.add(OptOut(phone=phone, source="contacts import"))
    counted = list_counts(session, version)
    if session.get_bind().dialect.name == "postgresql":
        # Statistics for the new rows now, not when autovacuum gets to them: with a million
        # rows it does not know of, the planner read every remaining row for each page of an
        # expansion (826 ms a page half-way through a million; 0.7 ms once analysed).
        session.execute(text("ANALYZE contacts"))
    result = ImportResult(rows=written, opted_out=len(opted), replaced=replaced, **counted)
    ledger.append(
        session,
        "contacts.imported",
        {
            "file": path.name,
            "sha256": digest,
            "rows": result.rows,
            **counted,
            "opted_out": result.opted_out,
            "replaced_rows": replaced,
            "version": version,
        },
        actor=actor.name,
    )
    return result


def list_counts(session: Session, version: int) -> dict[str, int]:
    """A version's families, and its distinct mobiles, landlines and e-mail addresses."""
    dialect = session.get_bind().dialect.name
    current = Contact.version == version
    address = _emails(dialect)
    emails = select(func.count(func.distinct(address.c.value))).select_from(Contact)
    return {
        "households": session.scalar(
            select(func.count(func.distinct(Contact.household))).where(current)
        )
        or 0,
        "phones": session.scalar(select(func.count(func.distinct(Contact.phone))).where(current))
        or 0,
        "landlines": session.scalar(
            select(func.count(func.distinct(Contact.landline))).where(current)
        )
        or 0,
        "emails": session.scalar(emails.join(address, true()).where(current)) or 0,
    }


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
    """The `channels` column as tokens the database can match (wants()): `text;email` is text
    and e-mail for every category; `text;events=email` text, but e-mail for events; `events=`
    with nothing is no channel for events. Empty: every channel. Emergencies always use every
    channel, so they cannot be chosen."""
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


# --- audiences ---------------------------------------------------------------------------------

AUDIENCE_KINDS = ("school", "route", "grade")


@dataclass(frozen=True)
class Audience:
    """Terms of one kind are alternatives, kinds narrow each other:
    `school:a school:b route:12` is everyone at school a or b who rides route 12."""

    everyone: bool
    terms: dict[str, frozenset[str]]

    def where(self, dialect: str, row: Any = Contact) -> ColumnElement[bool]:
        """The SQL condition a contact row (of `row`, an alias of contacts) meets when the
        audience selects it."""
        if self.everyone:
            return true()
        fields = {"school": row.schools, "route": row.routes, "grade": row.grades}
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


def audience_rows(session: Session, audience: Audience, version: int) -> Select[int]:
    """The ids of the audience's contact rows in one version: what an expansion pages through."""
    dialect = session.get_bind().dialect.name
    return select(Contact.id).where(Contact.version == version, audience.where(dialect))


def recipients(
    session: Session,
    audience: Audience,
    version: int,
    channel: str,
    category: str,
    *also: ColumnElement[bool],
) -> Select[*tuple[Any, ...]]:
    """(contact id, recipient, language, household) for every number or address in the
    audience that this channel reaches for a message of this category: mobiles for a text,
    mobiles and landlines for a call, addresses for an e-mail; each where the family wants the
    channel, and no number that opted out; `also`: further conditions on the contact row."""
    dialect = session.get_bind().dialect.name
    chosen = (
        Contact.version == version,
        audience.where(dialect),
        wants(channel, category, dialect),
        *also,
    )
    if channel == "email":
        address = _emails(dialect)
        return (
            select(Contact.id, address.c.value, Contact.locale, Contact.household)
            .select_from(Contact)
            .join(address, true())
            .where(*chosen)
        )
    numbers = [Contact.phone] if channel == "sms" else [Contact.phone, Contact.landline]
    parts = [
        select(Contact.id, number, Contact.locale, Contact.household).where(
            *chosen, number.is_not(None), ~exists().where(OptOut.phone == number)
        )
        for number in numbers
    ]
    if len(parts) == 1:
        return parts[0]
    both = union_all(*parts).subquery()
    return select(*both.c)


def wants(channel: str, category: str, dialect: str, row: Any = Contact) -> ColumnElement[bool]:
    """The contact row's family takes this channel for this category (`preferences`)."""
    if category in EMERGENCY_CATEGORIES:
        return true()
    return or_(
        _has_any(row.prefers, frozenset({f"{category}:{channel}"}), dialect),
        and_(
            _has_any(row.prefers, frozenset({f"*:{channel}"}), dialect),
            ~_has_any(row.prefers, frozenset({category}), dialect),
        ),
    )


def reachable(channel: str, category: str, dialect: str, row: Any = Contact) -> ColumnElement[bool]:
    """The contact row has a number or address this channel reaches for this category (what
    `recipients` would give of it), as one condition."""
    wanted = wants(channel, category, dialect, row)
    if channel == "email":
        return and_(wanted, func.json_array_length(row.emails) > 0)
    numbers = [row.phone] if channel == "sms" else [row.phone, row.landline]
    return and_(
        wanted,
        or_(*(and_(n.is_not(None), ~exists().where(OptOut.phone == n)) for n in numbers)),
    )


def _emails(dialect: str) -> Any:
    """A contact row's addresses, one row each (joined laterally to `contacts`)."""
    function = func.json_array_elements_text if dialect == "postgresql" else func.json_each
    return function(Contact.emails).table_valued("value")


@dataclass(frozen=True)
class Reach:
    """Whom a message would reach now: families, and per channel the numbers or addresses by
    language (each under its first row's language)."""

    families: int
    by_channel: dict[str, dict[str, int]]

    def total(self, channel: str) -> int:
        return sum(self.by_channel.get(channel, {}).values())


def reach(
    session: Session, audience: Audience, version: int, channels: Iterable[str], category: str
) -> Reach:
    """The audience counted by the database, with no row loaded here, and once per
    transaction (a compose's check, plan and view, or a trigger's compose and approval, ask
    alike: at a million contacts a count is most of an approval's time, and they agree)."""
    wanted = tuple(c for c in FAMILY_CHANNELS if c in set(channels))
    key = (audience.describe(), version, wanted, category)
    counted = _counted(session)
    if key not in counted:
        counted[key] = _reach(session, audience, version, wanted, category)
    return counted[key]


def _counted(session: Session) -> dict[tuple[Any, ...], Reach]:
    """This transaction's audience counts (a new transaction starts with none)."""
    transaction = session.get_transaction()
    held = session.info.get("audience_counts")
    if held is None or held[0] is not transaction:
        held = session.info["audience_counts"] = (transaction, {})
    counts: dict[tuple[Any, ...], Reach] = held[1]
    return counts


def _reach(
    session: Session, audience: Audience, version: int, channels: tuple[str, ...], category: str
) -> Reach:
    if not channels:
        return Reach(0, {})
    selections = {c: recipients(session, audience, version, c, category) for c in channels}
    by_channel = {c: first_languages(session, rows) for c, rows in selections.items()}
    everyone = union_all(
        *(rows.with_only_columns(rows.selected_columns[3]) for rows in selections.values())
    ).subquery()
    families = session.scalar(select(func.count(func.distinct(everyone.c[0])))) or 0
    return Reach(families, {c: counts for c, counts in by_channel.items() if counts})


def first_languages(session: Session, rows: Select[Any]) -> dict[str, int]:
    """language -> distinct recipients of (id, recipient, language, ...) rows, each under its
    first row's language."""
    listed = rows.subquery()
    key, recipient, locale = listed.c[0], listed.c[1], listed.c[2]
    numbered = select(
        locale.label("locale"),
        func.row_number().over(partition_by=recipient, order_by=key).label("nth"),
    ).subquery()
    counts = session.execute(
        select(numbered.c.locale, func.count())
        .where(numbered.c.nth == 1)
        .group_by(numbered.c.locale)
    ).all()
    return {locale: n for locale, n in counts}
