"""Public-records export: a folder a reader can check without the broadcaster or its database.

For the messages composed in a range of the district's days (or one message): their metadata,
every rendition, approval and delivery (with its status history from the ledger), and the ledger
slice that records them; each table as CSV and as JSON Lines, a README.txt that documents the
format, and manifest.json with the SHA-256 of every file. Recipients' phone numbers are masked,
and the text the FERPA checks matched is redacted, unless a records officer asks for them. CSV
cells are made safe to open in a spreadsheet. Secrets (tokens, password hashes, account
credentials) are in none of the tables read here.

Here: choosing the messages, putting the export together, and writing and recording it. The
tables are read in export_tables.py, redacted by export_redaction.py, and written as files by
export_files.py, whose README_TEXT is the format's written definition.

The folder appears whole or not at all, and the ledger records the export only once it is there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BadInput, Needed, NotFound
from broadcaster.core.models import Delivery, LedgerHead, Message, User, utcnow
from broadcaster.core.permissions import require
from broadcaster.records import export_signing, inbox, signing
from broadcaster.records.export_files import (
    FORMAT,
    MANIFEST,
    csv_file,
    file_sha256,
    jsonl_file,
    manifest_bytes,
    readme,
)
from broadcaster.records.export_redaction import Redactor, StudentData
from broadcaster.records.export_tables import read_tables
from broadcaster.records.holds import days_asked


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
            raise BadInput(
                f"cannot write the export to {out} ({exc.strerror}); {_CHOOSE}"
            ) from None
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
            raise BadInput(f"could not write the export to {out} ({exc}); {_CHOOSE}") from None
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
    """Refuse a target folder that is a symbolic link (the export would land where the link points),
    that holds anything, or that cannot be written."""
    if out.is_symlink():
        raise BadInput(f"the folder {out} is a symbolic link; {_CHOOSE}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"{out} exists and is not an empty folder; {_CHOOSE}")
    existing = out.absolute().parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(
            f"cannot write the export to {out}: {existing} is not a folder you can write to; "
            f"{_CHOOSE}"
        )


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
    window = days_asked(district, "an export of a range of days", first, last)
    if window is not None:
        start, end = window
        query = query.where(Message.created_at >= start, Message.created_at < end)
    elif message_id is None:
        raise BadInput(
            "say what to export: a range of days (the first and the last), or one message"
        )
    if message_id is not None:
        query = query.where(Message.id == message_id)
    found = list(session.scalars(query))
    if not found:
        what = f"no message {message_id}" if message_id is not None else "no message"
        where = " in the range of days asked for" if window is not None else ""
        raise NotFound(f"{what}{where}", Needed("message"))
    students = StudentData(district, found, include_student_data)
    addressed = session.scalars(
        select(Delivery.recipient).where(
            Delivery.message_id.in_([m.id for m in found]), Delivery.channel == "email"
        )
    )
    redact = Redactor(district, students, include_recipients, set(addressed))
    ids = [m.id for m in found]
    tables = read_tables(session, found, redact)
    tables["inbox"] = inbox.export_rows(session, ids, window)
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
        files[f"{name}.csv"] = csv_file(rows)
        files[f"{name}.jsonl"] = jsonl_file(rows)
    # After the tables: what they redacted is counted as they are redacted.
    files["README.txt"] = readme(
        include_recipients=include_recipients,
        student_data_found=None if include_student_data else students.found(),
    )
    slice_seqs = [row["seq"] for row in tables["ledger"]]
    signer = signing.configured_signer(district)
    if signer is not None:
        files.update(export_signing.evidence(session, signer, tables["ledger"]))
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
        "signed_by": signer.key_id if signer else None,
        "files": {name: file_sha256(data) for name, data in sorted(files.items())},
    }
    files[MANIFEST] = manifest_bytes(manifest)
    if signer is not None:
        files[export_signing.SIGNATURE] = export_signing.signature(signer, files)
    return Export(files, ids, scope)
