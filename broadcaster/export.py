"""Public-records export: a folder a reader can check without the broadcaster or its database.

For the messages composed in a range of the district's days (or one message): their metadata,
every rendition, approval and delivery (with its status history from the ledger), and the ledger
slice that records them; each table as CSV and as JSON Lines, a README.txt that documents the
format, and manifest.json with the SHA-256 of every file. Recipients' phone numbers are masked
unless a records officer asks for them. Secrets (tokens, password hashes, account credentials) are
in none of the tables read here. The format is written down in README_TEXT below.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from broadcaster import ledger
from broadcaster.config import DistrictConfig
from broadcaster.errors import BadInput, NotFound
from broadcaster.holds import day_range
from broadcaster.models import (
    Approval,
    Delivery,
    LedgerEntry,
    LedgerHead,
    LedgerPayload,
    Message,
    RecordDestruction,
    Rendition,
    User,
    utcnow,
)
from broadcaster.permissions import require
from broadcaster.redaction import PHONE, mask

FORMAT = "broadcaster-records-export/1"
MANIFEST = "manifest.json"
TABLES = ("messages", "renditions", "approvals", "deliveries", "ledger")
# The delivery claim's bookkeeping is not part of the record.
_DELIVERY_INTERNAL = frozenset({"claim", "claimed_at", "lease_until"})

README_TEXT = """\
Public-records export from broadcaster ({format})

Every table is written twice, with the same rows: NAME.csv (UTF-8, a header row; lists and
objects as JSON text in their cell; empty cell for null) and NAME.jsonl (one JSON object a line).

messages     one row per message: every column of the message (template and template_version,
             category, kind, state, audience, variables, created_at, updated_at, ...), its
             author, who submitted it, who approved it, and whether retention destroyed its
             content or its recipients' phone numbers (destroyed text reads "[destroyed ...]").
renditions   the text of the message for each channel and language, with its measurements.
approvals    every decision: by whom, on what basis ("second person", or "pre-approved template
             NAME@VERSION" for the incident path), acknowledged warnings, reason, time.
deliveries   one row per post or text: channel, account, recipient, status, attempts, provider id
             and URL, error, times, and status_history (the ledger's entries for it).
ledger       the slice of the ledger's hash chain from the first to the last entry of these
             messages, then any destruction records that removed payloads in it. Columns: seq,
             created_at, event, message_id, actor, payload_sha256, prev_hash, entry_hash,
             payload, payload_state, purged_by.

Checking the ledger slice by hand (verify-export does all of it):
  entry_hash = SHA-256 (hex) of the UTF-8 JSON array
      [seq, created_at, event, message_id, actor, payload_sha256, prev_hash]
  written with ", " and ": " separators and non-ASCII characters escaped as \\uXXXX (Python's
  json.dumps defaults); each entry's prev_hash is the entry_hash of the entry before it.
  payload_state "included": payload is the entry's content exactly as hashed, so
      SHA-256(payload) = payload_sha256.
  payload_state "redacted": phone numbers in the payload were masked for this export, so it no
      longer matches payload_sha256; the chain link still verifies.
  payload_state "purged": retention destroyed the payload; purged_by is the seq of the destruction
      record (included in the slice) that lists this entry.
  payload_state "omitted": the entry belongs to another message or to no message in this export.
  payload_state "missing": the payload is gone without a destruction record (the ledger is broken
      there; verify-export fails).
manifest.json gives the chain's head (seq and hash) when the export was made; `broadcaster
records verify` on the district's system checks the whole chain up to it.

Recipients: {recipients}

manifest.json lists every other file with its SHA-256 and carries manifest_sha256, the SHA-256
of its own canonical JSON without that key. Check everything with:
  broadcaster records verify-export THIS_FOLDER
"""
REDACTION_NOTE = (
    "phone numbers are masked (+1•••••••0100: the country code's first digit and the last four)"
)
INCLUDED_NOTE = "phone numbers are included (exported by a records officer)"


@dataclass
class Export:
    files: dict[str, bytes]
    messages: list[int]
    record: int  # the ledger entry that records the export

    def write(self, out: Path) -> None:
        """All files or none: written beside the target, then moved into place."""
        check_target(out)
        partial = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            for name, data in self.files.items():
                (partial / name).write_bytes(data)
            if out.exists():
                out.rmdir()  # empty, checked above
            partial.rename(out)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise


def check_target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out} exists and is not an empty folder; choose a new --out")


class Redactor:
    """Masks phone numbers (but not the district's own public ones) unless they are kept."""

    def __init__(self, district: DistrictConfig, keep: bool) -> None:
        self.keep = keep
        self.public = district.district_phones

    def text(self, value: str) -> str:
        if self.keep:
            return value
        return PHONE.sub(lambda m: m[0] if m[0] in self.public else mask(m[0]), value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def build(
    session: Session,
    district: DistrictConfig,
    actor: User,
    *,
    first: dt.date | None = None,
    last: dt.date | None = None,
    message_id: int | None = None,
    include_recipients: bool = False,
) -> Export:
    """Read everything into memory and record the export in the ledger (the caller commits,
    then writes)."""
    require(actor, "export_records", district)
    if include_recipients:
        require(actor, "include_recipients", district)
    query = select(Message).order_by(Message.id)
    if first is not None or last is not None:
        if first is None or last is None:
            raise BadInput("an export by date needs both --from and --to")
        start, end = day_range(district, first, last)
        query = query.where(Message.created_at >= start, Message.created_at < end)
    elif message_id is None:
        raise BadInput("say what to export: --from DATE --to DATE, or --message ID")
    if message_id is not None:
        query = query.where(Message.id == message_id)
    found = list(session.scalars(query))
    if not found:
        what = f"message {message_id}" if message_id is not None else "no message"
        raise NotFound(f"{what} in the range asked for; `broadcaster list` shows the messages")
    redact = Redactor(district, include_recipients)
    ids = [m.id for m in found]
    entries = _entries(session, ids)
    tables = {
        "messages": [_message_row(session, m, entries) for m in found],
        "renditions": [_rendition_row(r) for m in found for r in m.renditions],
        "approvals": [_approval_row(a) for m in found for a in m.approvals],
        "deliveries": _delivery_rows(session, ids, entries),
        "ledger": _ledger_rows(session, ids, redact),
    }
    head = session.get(LedgerHead, 1)
    # What was exported: said once in the ledger's record of the export and in the manifest.
    scope = {
        "from": first.isoformat() if first else None,
        "to": last.isoformat() if last else None,
        "message": message_id,
        "messages": ids,
        "include_recipients": include_recipients,
    }
    record = ledger.append(
        session, "records.exported", {"by": actor.name, **scope}, actor=actor.name
    )
    files: dict[str, bytes] = {}
    for name, rows in tables.items():
        rows = [redact.value(row) for row in rows] if name != "ledger" else rows
        files[f"{name}.csv"] = _csv(rows)
        files[f"{name}.jsonl"] = _jsonl(rows)
    note = INCLUDED_NOTE if include_recipients else REDACTION_NOTE
    files["README.txt"] = README_TEXT.format(format=FORMAT, recipients=note).encode("utf-8")
    slice_seqs = [row["seq"] for row in tables["ledger"]]
    manifest = {
        "format": FORMAT,
        "created_at": utcnow().isoformat(),
        "exported_by": actor.name,
        **scope,
        "ledger": {
            "first_seq": min(slice_seqs),
            "last_seq": max(slice_seqs),
            "head_seq": head.seq if head else 0,
            "head_hash": head.entry_hash if head else ledger.GENESIS,
            "export_record": record,
        },
        "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    files[MANIFEST] = manifest_bytes(manifest)
    return Export(files, ids, record)


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    sealed = {**body, "manifest_sha256": ledger.sha256(ledger.canonical(body))}
    return (json.dumps(sealed, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value


def _columns(row: object, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every mapped column, so columns added later are exported without changes here."""
    attrs = inspect(row).mapper.column_attrs  # type: ignore[union-attr]
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
        redacted = ledger.canonical(redact.value(json.loads(body)))
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


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False)
    return value


def _csv(rows: list[dict[str, Any]]) -> bytes:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue().encode("utf-8")


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
