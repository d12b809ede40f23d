"""The tamper-evident ledger: an append-only SHA-256 hash chain.

Each chain link hashes its own fields, the SHA-256 of its payload and the previous link's hash.
Payloads live in a separate table so that a retention purge can remove one (a phone number, say)
while the chain, which keeps only the payload's hash, still verifies. Nothing in the application
updates or deletes a chain link; the database refuses it too (see the first migration).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, func, insert, or_, select
from sqlalchemy.orm import Session

from broadcaster.core import ledger_tree
from broadcaster.core.models import LedgerEntry, LedgerHead, LedgerPayload

GENESIS = "0" * 64
PURGE_EVENT = "records.purged"
# Secrets never enter the ledger; a payload carrying one of these keys is a programming error.
_SECRET_KEYS = frozenset({"token", "password", "secret", "auth_token", "api_key"})
# Serializes appends on PostgreSQL (SQLite's BEGIN IMMEDIATE already does).
_ADVISORY_LOCK = 0x6C656467  # "ledg"
# Appended through Core: the ORM's bulk insert cost the recorder more than hashing the chain.
_ENTRIES = cast(Table, LedgerEntry.__table__)
_PAYLOADS = cast(Table, LedgerPayload.__table__)
_PAYLOAD_FIELDS = (LedgerPayload.body, LedgerPayload.purged_by)


def canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def link_hash(
    seq: int,
    created_at: str,
    event: str,
    message_id: int | None,
    actor: str | None,
    payload_sha256: str,
    prev_hash: str,
) -> str:
    return sha256(
        json.dumps([seq, created_at, event, message_id, actor, payload_sha256, prev_hash])
    )


@dataclass(frozen=True)
class Entry:
    """One entry to append: what happened, to which message, by whom."""

    event: str
    payload: dict[str, Any]
    message_id: int | None = None
    actor: str | None = None


def append(
    session: Session,
    event: str,
    payload: dict[str, Any],
    *,
    message_id: int | None = None,
    actor: str | None = None,
) -> int:
    """Add one entry in the caller's transaction, so it commits or rolls back with the change.
    Returns its sequence number."""
    return append_many(session, [Entry(event, payload, message_id, actor)])[0]


def append_many(session: Session, entries: list[Entry]) -> list[int]:
    """Add entries in order, in the caller's transaction, with two bulk INSERTs."""
    for entry in entries:
        leaked = _SECRET_KEYS & set(entry.payload)
        if leaked:
            raise ValueError(f"refusing to write secrets to the ledger: {sorted(leaked)}")
    if not entries:
        return []
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK)))
    session.flush()  # earlier ORM changes in this transaction first
    head = session.get(LedgerHead, 1)
    seq, prev_hash = (head.seq, head.entry_hash) if head else (0, GENESIS)
    created_at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    links: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        body = canonical(entry.payload)
        body_hash = sha256(body)
        entry_hash = link_hash(
            seq, created_at, entry.event, entry.message_id, entry.actor, body_hash, prev_hash
        )
        links.append(
            {
                "seq": seq,
                "created_at": created_at,
                "event": entry.event,
                "message_id": entry.message_id,
                "actor": entry.actor,
                "payload_sha256": body_hash,
                "prev_hash": prev_hash,
                "entry_hash": entry_hash,
            }
        )
        bodies.append({"seq": seq, "body": body, "purged_by": None})
        prev_hash = entry_hash
    session.execute(insert(_ENTRIES), links)
    session.execute(insert(_PAYLOADS), bodies)
    # The Merkle tree grows in the same transaction: a checkpoint can only sign what committed.
    frontier = ledger_tree.grow(
        session,
        head.seq if head else 0,
        head.tree_frontier if head else b"",
        [link["entry_hash"] for link in links],
    )
    if head is None:
        session.add(LedgerHead(id=1, seq=seq, entry_hash=prev_hash, tree_frontier=frontier))
    else:
        head.seq, head.entry_hash, head.tree_frontier = seq, prev_hash, frontier
    session.flush()
    return [link["seq"] for link in links]


def purge_payloads(
    session: Session,
    seqs: list[int],
    rule: str,
    actor: str,
    details: dict[str, Any] | None = None,
) -> int:
    """Remove the payloads of these entries and record the destruction in the ledger itself
    (with `details`: what else the purge destroyed, for the reader of the record)."""
    record = append(
        session,
        PURGE_EVENT,
        {**(details or {}), "rule": rule, "entries": sorted(seqs)},
        actor=actor,
    )
    for payload in session.scalars(select(LedgerPayload).where(LedgerPayload.seq.in_(seqs))):
        payload.body, payload.purged_by = None, record
    return record


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    problem: str | None = None
    bad_seq: int | None = None


def verify(session: Session) -> Verification:
    """Walk the chain from the first entry; stop at the first one that was changed, removed or
    reordered, and say which."""
    # Plain rows, not ORM objects: a million-entry walk spends its time building those.
    rows = session.execute(
        select(*_ENTRIES.c, LedgerPayload.seq.label("payload_seq"), *_PAYLOAD_FIELDS)
        .outerjoin(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
        .order_by(LedgerEntry.seq)
        .execution_options(yield_per=1000)
    )
    prev_hash, expected_seq, count = GENESIS, 1, 0
    purges = _destruction_records(session)
    for entry in rows:
        problem = _check_link(entry, expected_seq, prev_hash, purges)
        if problem:
            return Verification(False, count, problem, entry.seq)
        prev_hash, expected_seq, count = entry.entry_hash, entry.seq + 1, count + 1
    head = session.get(LedgerHead, 1)
    if head is not None and (head.seq != count or head.entry_hash != prev_hash):
        return Verification(
            False,
            count,
            f"entries after {count} were removed (the ledger head records {head.seq})",
            count + 1,
        )
    if head is None and count:
        return Verification(False, count, "the ledger head record was removed", None)
    return Verification(True, count)


def _destruction_records(session: Session) -> dict[int, set[int]]:
    """Which entries each purge record says it removed (the record itself is chained, so a
    forged or altered one fails verification where it stands)."""
    rows = session.execute(
        select(LedgerPayload.seq, LedgerPayload.body)
        .join(LedgerEntry, LedgerEntry.seq == LedgerPayload.seq)
        .where(LedgerEntry.event == PURGE_EVENT, LedgerPayload.body.is_not(None))
    )
    # cast: the query keeps only the bodies that are not NULL
    return {seq: set(json.loads(cast(str, body))["entries"]) for seq, body in rows}


def _check_link(
    entry: Row[*tuple[Any, ...]],
    expected_seq: int,
    prev_hash: str,
    purges: dict[int, set[int]],
) -> str | None:
    """One entry row with its payload's columns (payload_seq None: no payload row)."""
    if entry.seq != expected_seq:
        return f"entry {expected_seq} is missing (the chain jumps to {entry.seq}): it was deleted"
    if entry.prev_hash != prev_hash:
        return f"entry {entry.seq} does not follow entry {entry.seq - 1}: entries were reordered"
    recomputed = link_hash(
        entry.seq,
        entry.created_at,
        entry.event,
        entry.message_id,
        entry.actor,
        entry.payload_sha256,
        entry.prev_hash,
    )
    if recomputed != entry.entry_hash:
        return f"entry {entry.seq} was changed: its hash does not match its contents"
    if entry.payload_seq is None:
        return f"the payload of entry {entry.seq} was deleted"
    if entry.body is None:
        if entry.purged_by is None or entry.seq not in purges.get(entry.purged_by, set()):
            return f"the payload of entry {entry.seq} was removed without a destruction record"
    elif sha256(entry.body) != entry.payload_sha256:
        return f"the payload of entry {entry.seq} was changed: it no longer matches its hash"
    return None


def entries_for(
    session: Session, message_id: int, events: tuple[str, ...] = ()
) -> list[tuple[LedgerEntry, dict[str, Any] | None]]:
    """A message's entries, oldest first, with their payloads (None where purged); only the
    events starting with one of `events` when given (chosen in the database: a message to a
    million phones has a million delivery entries a timeline has no use for)."""
    query = (
        select(LedgerEntry, LedgerPayload.body)
        .outerjoin(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
        .where(LedgerEntry.message_id == message_id)
        .order_by(LedgerEntry.seq)
    )
    if events:
        prefixes = (LedgerEntry.event.startswith(e, autoescape=True) for e in events)
        query = query.where(or_(*prefixes))
    rows = session.execute(query)
    return [(entry, json.loads(body) if body else None) for entry, body in rows]
