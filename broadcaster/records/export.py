"""Public-records export: a folder a reader can check without the broadcaster or its database.

For the messages composed in a range of the district's days (or one message): their metadata,
every rendition, approval and delivery (with its status history from the ledger), and the ledger
slice that records them; each table as CSV and as JSON Lines, a README.txt that documents the
format, and manifest.json with the SHA-256 of every file. Recipients' phone numbers are masked,
and the text the FERPA checks matched is redacted, unless a records officer asks for them. CSV
cells are made safe to open in a spreadsheet. Secrets (tokens, password hashes, account
credentials) are in none of the tables read here. The format is written down in README_TEXT below.

The folder appears whole or not at all, and the ledger records the export only once it is there.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import escape
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from broadcaster.authoring.checks import content_of, personal_data_spans
from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BadInput, NotFound
from broadcaster.core.models import (
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
from broadcaster.core.permissions import require
from broadcaster.core.redaction import mask_phones
from broadcaster.records.holds import day_range

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
deliveries   one row per post or text: channel, account, recipient, status, attempts (requests
             that reached the provider), provider id and URL, error, times, and status_history
             (the ledger's entries for it).
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
  payload_state "redacted": phone numbers or student data in the payload were redacted for this
      export (see below), so it no longer matches payload_sha256; the chain link still verifies.
  payload_state "purged": retention destroyed the payload; purged_by is the seq of the destruction
      record (included in the slice) that lists this entry.
  payload_state "omitted": the entry belongs to another message or to no message in this export.
  payload_state "missing": the payload is gone without a destruction record (the ledger is broken
      there; verify-export fails).
manifest.json gives the chain's head (seq and hash) when the export was made; `broadcaster
records verify` on the district's system checks the whole chain up to it. The district's ledger
records the export itself (event records.exported) once this folder was complete, with this
manifest's manifest_sha256.

Spreadsheets: a CSV cell whose text begins with =, +, -, @, a tab or a carriage return (or
the full-width ＝ ＋ － ＠) has a single quote (') put in front of it, so that a spreadsheet
shows it as text instead of running it as a formula (OWASP, "CSV Injection"). The .jsonl files
keep every value exactly as recorded.

Recipients: {recipients}

Student data: {student_data}

manifest.json lists every other file with its SHA-256 and carries manifest_sha256, the SHA-256
of its own canonical JSON without that key. Check everything with:
  broadcaster records verify-export THIS_FOLDER
"""
REDACTION_NOTE = (
    "phone numbers are masked (+1•••••••0100: the country code's first digit and the last four)"
)
INCLUDED_NOTE = "phone numbers are included (exported by a records officer)"
STUDENT_DATA_NOTE = """\
the text that the district's FERPA checks (student IDs, Social Security
numbers, dates of birth, personal phone numbers and e-mail addresses, names of students on the
roster) matched in these messages is replaced by "[redacted: RULE]" wherever it appears in this
export, in every file. Redacted, by rule:
{found}"""
STUDENT_DATA_INCLUDED = (
    "included: the text the FERPA checks matched is left in (exported by a records officer with "
    "--include-student-data)"
)
# OWASP "CSV Injection": a cell that starts with one of these is a formula to a spreadsheet.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


@dataclass
class Export:
    files: dict[str, bytes]
    messages: list[int]
    scope: dict[str, Any]  # what was exported, as the ledger records it

    @property
    def manifest_sha256(self) -> str:
        return str(json.loads(self.files[MANIFEST])["manifest_sha256"])

    def write(self, out: Path) -> None:
        """All files or none: written into a new folder beside the target (the same file system),
        flushed to disk, then renamed into place in one step."""
        check_target(out)
        parent = out.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            # Owner-only (0700), as the export stays: it may hold recipients and student data.
            partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
        except OSError as exc:
            raise BadInput(f"--out {out}: cannot write there ({exc.strerror}); {_CHOOSE}") from None
        try:
            for name, data in self.files.items():
                _write_synced(partial / name, data)
            _fsync(partial)
            if out.is_dir() and not out.is_symlink():
                out.rmdir()  # empty, checked above
            partial.rename(out)  # never over a folder someone filled (or linked) meanwhile
            _fsync(parent)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise BadInput(
                f"--out {out}: could not write the export there ({exc}); {_CHOOSE}"
            ) from None
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise


_CHOOSE = "choose a new folder you can write to"


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(folder: Path) -> None:
    """Make a folder's new entries durable (a rename is only on disk once its folder is)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_target(out: Path) -> None:
    """Refuse an --out that is a symbolic link (the export would land where the link points),
    that holds anything, or that cannot be written."""
    if out.is_symlink():
        raise BadInput(f"--out {out} is a symbolic link; {_CHOOSE}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--out {out} exists and is not an empty folder; {_CHOOSE}")
    existing = out.absolute().parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"--out {out}: {existing} is not a folder you can write to; {_CHOOSE}")


def publish(session: Session, actor: User, export: Export, out: Path) -> int:
    """Write the folder, then record it in the ledger (in the caller's transaction). A folder
    whose record cannot be written is taken away again. Returns the record's seq."""
    export.write(out)
    try:
        return ledger.append(
            session,
            "records.exported",
            {"by": actor.name, **export.scope, "manifest_sha256": export.manifest_sha256},
            actor=actor.name,
        )
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


class StudentData:
    """The text the FERPA checks match in these messages' renditions, title and variables,
    redacted wherever it appears in the export (ledger payloads, error texts, ...), with a count
    per rule and table for the README. Nothing is redacted when a records officer keeps it."""

    def __init__(self, district: DistrictConfig, messages: list[Message], keep: bool) -> None:
        self.rules: dict[str, str] = {}
        self.counts: Counter[tuple[str, str]] = Counter()
        for text in [] if keep else _content(messages):
            for check, start, end in personal_data_spans(district, text):
                found = text[start:end]
                # As the web rendition's HTML holds it, too.
                for form in (found, html.escape(found), str(escape(found))):
                    self.rules.setdefault(form, check.replace("_", " "))
        # Longest first, and never inside a longer word or number (an ID inside a hash).
        forms = sorted(self.rules, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(_whole, forms))) if forms else None

    def text(self, table: str, value: str) -> str:
        if self.pattern is None:
            return value

        def redacted(match: re.Match[str]) -> str:
            rule = self.rules[match[0]]
            self.counts[rule, table] += 1
            return f"[redacted: {rule}]"

        return self.pattern.sub(redacted, value)

    def found(self) -> str:
        if not self.counts:
            return "  nothing: the checks matched no student data in these messages\n"
        tables: dict[str, dict[str, int]] = {}
        for (rule, table), count in sorted(self.counts.items()):
            tables.setdefault(rule, {})[table] = count
        return "".join(
            f"  {rule}: " + ", ".join(f"{n} in {table}" for table, n in where.items()) + "\n"
            for rule, where in tables.items()
        )


def _content(messages: list[Message]) -> Iterator[str]:
    """What the author wrote and the checks read: titles, variables, renditions as a reader sees
    them."""
    for message in messages:
        yield message.title
        yield from _strings(message.variables)
        for rendition in message.renditions:
            yield content_of(rendition.channel, rendition.text).text


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _whole(form: str) -> str:
    before = r"(?<!\w)" if re.match(r"\w", form[:1]) else ""
    after = r"(?!\w)" if re.match(r"\w", form[-1:]) else ""
    return before + re.escape(form) + after


class Redactor:
    """What an export leaves out unless a records officer keeps it: recipients' phone numbers
    (masked; the district's own public numbers stay) and student data (redacted)."""

    def __init__(self, district: DistrictConfig, students: StudentData, keep_phones: bool) -> None:
        self.students = students
        self.keep_phones = keep_phones
        self.public = district.district_phones

    def text(self, table: str, value: str) -> str:
        value = self.students.text(table, value)
        return value if self.keep_phones else mask_phones(value, self.public) or value

    def value(self, table: str, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(table, value)
        if isinstance(value, dict):
            return {k: self.value(table, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(table, v) for v in value]
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
    include_student_data: bool = False,
) -> Export:
    """Read everything into memory; nothing is written (`publish` writes the folder, then
    records it)."""
    require(actor, "export_records", district)
    for asked, action in (
        (include_recipients, "include_recipients"),
        (include_student_data, "include_student_data"),
    ):
        if asked:
            require(actor, action, district)
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
    students = StudentData(district, found, include_student_data)
    redact = Redactor(district, students, include_recipients)
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
        "include_student_data": include_student_data,
    }
    files: dict[str, bytes] = {}
    for name, rows in tables.items():
        rows = [redact.value(name, row) for row in rows] if name != "ledger" else rows
        files[f"{name}.csv"] = _csv(rows)
        files[f"{name}.jsonl"] = _jsonl(rows)
    readme = README_TEXT.format(
        format=FORMAT,
        recipients=INCLUDED_NOTE if include_recipients else REDACTION_NOTE,
        student_data=(
            STUDENT_DATA_INCLUDED
            if include_student_data
            else STUDENT_DATA_NOTE.format(found=students.found())
        ),
    )
    files["README.txt"] = readme.encode("utf-8")
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
        },
        "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    files[MANIFEST] = manifest_bytes(manifest)
    return Export(files, ids, scope)


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


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return value  # a number is never a formula


def spreadsheet_safe(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula (OWASP CSV Injection)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _csv(rows: list[dict[str, Any]]) -> bytes:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue().encode("utf-8")


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
