"""The district's contact list in the database (each import of its CSV export, read by
contacts_csv.py, a new version), opt-outs, and audience expressions that select recipients
from it."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

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
from broadcaster.core.contacts_csv import EMERGENCY_CATEGORIES, GRADE, parse_csv
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Contact, ContactList, Message, OptOut, User, utcnow
from broadcaster.core.permissions import require
from broadcaster.core.wording import count

# Imports take this PostgreSQL advisory lock, so that two at once write two versions one after
# the other (SQLite's BEGIN IMMEDIATE serializes them already). Approvals take no lock: see
# drop_unused_versions.
_IMPORT_LOCK = 0x636F6E74  # "cont"
# A list replaced this long ago can no longer be the one an approval still in its transaction
# read as current (approvals take well under a second; PostgreSQL ends a transaction idle for
# Settings.db_lost_client_seconds).
SUPERSEDED_GRACE = dt.timedelta(minutes=10)
IMPORT_CHUNK = 5000  # contact rows parsed and inserted at a time


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
            f"{count(self.rows, 'row')}: {count(self.households, 'family', 'families')}, "
            f"{count(self.phones, 'mobile number')}, {count(self.landlines, 'landline')}, "
            f"{count(self.emails, 'e-mail address', 'e-mail addresses')}, {self.opted_out} "
            f"opted out (replaced {count(self.replaced, 'row')})"
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
        raise BadInput("the audience is empty: use all, or terms like school:lincoln-hs route:12")
    if words == ["all"]:
        return Audience(True, {})
    terms: dict[str, set[str]] = {}
    for word in words:
        kind, sep, value = word.partition(":")
        if not sep or kind not in AUDIENCE_KINDS or not value:
            raise BadInput(f"audience term {word!r}: write all, or school:SLUG, route:ID, grade:N")
        if kind == "school" and district.school(value) is None:
            raise BadInput(f"the audience names an unknown school {value!r}")
        if kind == "route" and district.route(value) is None:
            raise BadInput(f"the audience names an unknown route {value!r}")
        if kind == "grade":
            if not GRADE.match(value):
                raise BadInput(f"the audience's grade {value!r} should be PK, TK, K or 1 to 12")
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


def language_of(session: Session, phone: str) -> str | None:
    """The language the current contact list gives for this mobile or landline (its first
    row's), or None when the number is not in it."""
    return session.scalar(
        select(Contact.locale)
        .where(
            Contact.version == current_version(session),
            or_(Contact.phone == phone, Contact.landline == phone),
        )
        .order_by(Contact.id)
        .limit(1)
    )


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
    """The contact row's family takes this channel for this category
    (`contacts_csv.preferences`)."""
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
