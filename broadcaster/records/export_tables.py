"""The tables of a public-records export, read from the database: messages, renditions, approvals,
deliveries (with their status history from the ledger), who each message reached (per family,
records/reach.py) and the ledger slice that records them.
Rows hold every mapped column, so columns added later are exported without changes here.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.models import (
    Approval,
    Delivery,
    LedgerEntry,
    LedgerPayload,
    Message,
    RecordDestruction,
    Rendition,
)
from broadcaster.records import reach
from broadcaster.records.export_redaction import Redactor

# The delivery claim's bookkeeping is not part of the record.
_DELIVERY_INTERNAL = frozenset({"claim", "claimed_at", "lease_until"})


def read_tables(
    session: Session, messages: list[Message], redact: Redactor
) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, by table name. Only the ledger's payloads are redacted here (each
    row's state says whether it was); the caller redacts the other tables' rows."""
    ids = [m.id for m in messages]
    entries = _entries(session, ids)
    return {
        "messages": [_message_row(session, m, entries) for m in messages],
        "renditions": [_rendition_row(r) for m in messages for r in m.renditions],
        "approvals": [_approval_row(a) for m in messages for a in m.approvals],
        "deliveries": _delivery_rows(session, ids, entries),
        "reach": _reach_rows(session, messages, redact),
        "ledger": _ledger_rows(session, ids, redact),
    }


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value


def _columns(row: object, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every mapped column, so columns added later are exported without changes here."""
    attrs = inspect(row).mapper.column_attrs
    return {a.key: _plain(getattr(row, a.key)) for a in attrs if a.key not in skip}


def _entries(session: Session, ids: list[int]) -> list[tuple[LedgerEntry, dict | None]]:
    rows = session.execute(
        select(LedgerEntry, LedgerPayload.body)
        .outerjoin(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
        .where(LedgerEntry.message_id.in_(ids))
        .order_by(LedgerEntry.seq)
    )
    return [(entry, json.loads(body) if body else None) for entry, body in rows]


def _message_row(
    session: Session, message: Message, entries: list[tuple[LedgerEntry, dict | None]]
) -> dict[str, Any]:
    mine = [e for e, _ in entries if e.message_id == message.id]
    destroyed = set(
        session.scalars(
            select(RecordDestruction.scope).where(RecordDestruction.message_id == message.id)
        )
    )
    return {
        **_columns(message, frozenset({"author_id"})),
        "author": message.author.name,
        # The chain's own fields (not payloads), so they survive a retention purge.
        "submitted_by": [e.actor for e in mine if e.event == "message.submit"],
        "approved_by": [a.user.name for a in message.approvals if a.decision == "approved"],
        "content_destroyed": "content" in destroyed,
        "recipients_destroyed": bool(destroyed),
    }


def _rendition_row(rendition: Rendition) -> dict[str, Any]:
    return _columns(rendition, frozenset({"id"}))


def _approval_row(approval: Approval) -> dict[str, Any]:
    return {**_columns(approval, frozenset({"id", "user_id"})), "by": approval.user.name}


def _delivery_rows(
    session: Session, ids: list[int], entries: list[tuple[LedgerEntry, dict | None]]
) -> list[dict[str, Any]]:
    history: dict[int, list[dict[str, Any]]] = {}
    for entry, payload in entries:
        if not entry.event.startswith("delivery.") or payload is None:
            continue
        named = payload.get("deliveries") or [payload.get("delivery")]
        step = {
            "seq": entry.seq,
            "at": entry.created_at,
            "event": entry.event,
            **{k: payload[k] for k in ("attempt", "status", "how", "error") if payload.get(k)},
        }
        for delivery_id in named:
            if delivery_id is not None:
                history.setdefault(delivery_id, []).append(step)
    rows = session.scalars(
        select(Delivery).where(Delivery.message_id.in_(ids)).order_by(Delivery.id)
    )
    return [
        {**_columns(d, _DELIVERY_INTERNAL), "status_history": history.get(d.id, [])} for d in rows
    ]


def _reach_rows(
    session: Session, messages: list[Message], redact: Redactor
) -> list[dict[str, Any]]:
    """One row per family of each message that texted, called or e-mailed: reached, pending or
    not, by which channel and when, what was tried. Masked as the deliveries are (the redactor
    masks them again with the other tables)."""
    return [
        {"message_id": m.id, **family.model_dump(mode="json")}
        for m in messages
        if any(c in FAMILY_CHANNELS for c in m.channels)
        for family in reach.families(session, m.id, unmasked=redact.keep_phones)
    ]


def _ledger_rows(session: Session, ids: list[int], redact: Redactor) -> list[dict[str, Any]]:
    """The contiguous stretch of the chain from the first to the last entry of these messages,
    then the destruction records that removed payloads in it (if they come later)."""
    seqs = list(
        session.scalars(
            select(LedgerEntry.seq).where(LedgerEntry.message_id.in_(ids)).order_by(LedgerEntry.seq)
        )
    )
    if not seqs:
        return []
    rows = _ledger_range(session, LedgerEntry.seq.between(seqs[0], seqs[-1]))
    later = {r[1].purged_by for r in rows if r[1] and r[1].purged_by} - {r[0].seq for r in rows}
    if later:
        rows += _ledger_range(session, LedgerEntry.seq.in_(sorted(later)))
    wanted = set(ids)
    return [_ledger_row(entry, payload, wanted, redact) for entry, payload in rows]


def _ledger_range(session: Session, where: Any) -> list[tuple[LedgerEntry, LedgerPayload | None]]:
    return [
        (entry, payload)
        for entry, payload in session.execute(
            select(LedgerEntry, LedgerPayload)
            .outerjoin(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
            .where(where)
            .order_by(LedgerEntry.seq)
        )
    ]


def _ledger_row(
    entry: LedgerEntry, payload: LedgerPayload | None, wanted: set[int], redact: Redactor
) -> dict[str, Any]:
    body = payload.body if payload else None
    # Records events (holds, purges, exports) name messages and people, never recipients.
    ours = entry.message_id in wanted or entry.event.startswith("records.")
    if body is None:
        state = "purged" if payload and payload.purged_by else "missing"
    elif not ours:
        state, body = "omitted", None
    else:
        redacted = ledger.canonical(redact.value("ledger", json.loads(body)))
        state = "included" if redacted == body else "redacted"
        body = redacted
    return {
        "seq": entry.seq,
        "created_at": entry.created_at,
        "event": entry.event,
        "message_id": entry.message_id,
        "actor": entry.actor,
        "payload_sha256": entry.payload_sha256,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "payload": body,
        "payload_state": state,
        "purged_by": payload.purged_by if payload else None,
    }
