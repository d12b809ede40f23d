"""Signed checkpoints of the ledger's Merkle tree: what witnesses keep and verifiers check.

A checkpoint is the C2SP tlog-checkpoint text (https://c2sp.org/tlog-checkpoint) in a signed
note (records/signing.py):

    alerts.example.org/ledger          the origin: the signing key's name
    1234                               the tree size
    <base64 root hash>                 RFC 9162 root of the first 1234 entries (core/ledger_tree)
    time 2026-12-03T23:59:00Z          an extension line: when it was signed

    — alerts.example.org/ledger <base64(key hash || Ed25519 signature)>

Each is stored (`ledger_checkpoints`) and named by a `records.checkpoint` ledger entry appended in
the same transaction, so a checkpoint row deleted later is noticed (`unrecorded`). The entry
itself grows the tree by one, so "the tree did not grow" means: nothing but checkpoint entries
since the last one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core import ledger, ledger_tree
from broadcaster.core.models import LedgerCheckpoint, LedgerEntry, utcnow
from broadcaster.records import signing
from broadcaster.records.signing import NoteError, Signer, VerifierKey

EVENT = "records.checkpoint"
TIME_FORMAT = signing.TIME_FORMAT
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")
_TIME = re.compile(r"time (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")


@dataclass(frozen=True)
class Checkpoint:
    size: int
    root: bytes
    signed_at: dt.datetime
    key_id: str
    note: str
    origin: str

    @property
    def view(self) -> dict[str, object]:
        return {
            "size": self.size,
            "root": base64.b64encode(self.root).decode("ascii"),
            "signed_at": self.signed_at.strftime(TIME_FORMAT),
            "key_id": self.key_id,
        }


def body(origin: str, size: int, root: bytes, signed_at: dt.datetime) -> str:
    root_text = base64.b64encode(root).decode("ascii")
    return f"{origin}\n{size}\n{root_text}\ntime {signed_at.strftime(TIME_FORMAT)}\n"


def sign_checkpoint(session: Session, signer: Signer) -> Checkpoint | None:
    """Sign the tree as it is now, store the checkpoint and name it in the ledger; None when
    the ledger is empty or nothing but checkpoints was added since the last one."""
    size = ledger_tree.tree_size(session)
    last = latest(session)
    if size == 0 or (last is not None and first_uncovered(session, last.size) is None):
        return None
    root = ledger_tree.root_at(session, size)
    signed_at = utcnow().replace(microsecond=0)
    note = signing.sign_note(body(signer.name, size, root, signed_at), signer)
    checkpoint = Checkpoint(size, root, signed_at, signer.key_id, note, signer.name)
    seq = ledger.append(session, EVENT, {**checkpoint.view, "root": root.hex()})
    session.add(
        LedgerCheckpoint(
            tree_size=size,
            root_hash=root.hex(),
            key_id=signer.key_id,
            signed_at=signed_at,
            note=note,
            ledger_seq=seq,
        )
    )
    session.flush()
    return checkpoint


def first_uncovered(session: Session, size: int) -> dt.datetime | None:
    """When the first entry that a checkpoint of `size` entries does not cover was added, or
    None: entries past `size` (leaf i is entry i + 1) other than checkpoints' own records. A walk
    of the primary key from `size` that stops at the first one, however long the ledger."""
    added = session.scalar(
        select(LedgerEntry.created_at)
        .where(LedgerEntry.seq > size, LedgerEntry.event != EVENT)
        .order_by(LedgerEntry.seq)
        .limit(1)
    )
    return dt.datetime.fromisoformat(added) if added is not None else None


def _from_row(row: LedgerCheckpoint) -> Checkpoint:
    """A stored checkpoint as its row says (records verify believes only its signed note)."""
    origin = row.note.split("\n", 1)[0]
    return Checkpoint(
        row.tree_size, _root(row.root_hash), row.signed_at, row.key_id, row.note, origin
    )


def _root(text: str) -> bytes:
    """A row's root as bytes; an edited one that is not hex matches nothing."""
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def latest(session: Session) -> Checkpoint | None:
    return next(iter(recent(session, 1)), None)


def recent(session: Session, limit: int | None = 50) -> list[Checkpoint]:
    """The newest checkpoints first (the Atom feed's entries; every one with no limit)."""
    rows = session.scalars(
        select(LedgerCheckpoint).order_by(LedgerCheckpoint.tree_size.desc()).limit(limit)
    )
    return [_from_row(row) for row in rows]


def unrecorded(session: Session) -> int | None:
    """The first `records.checkpoint` ledger entry whose checkpoint is not in the table (a
    deleted row), or None."""
    stored = select(LedgerCheckpoint.ledger_seq)
    return session.scalar(
        select(LedgerEntry.seq)
        .where(LedgerEntry.event == EVENT, LedgerEntry.seq.not_in(stored))
        .order_by(LedgerEntry.seq)
        .limit(1)
    )


Keys = Mapping[str, Ed25519PublicKey] | Iterable[VerifierKey]


def parse_and_verify(note: str | bytes, keys: Keys) -> Checkpoint:
    """The checkpoint in `note` once its signature by one of `keys` verifies (a verifier-key
    list, or `signing.public_keys`'s map by key id, whose keys are named by the note's origin);
    NoteError saying what is wrong otherwise: malformed, too large, not UTF-8, unknown key."""
    raw = note.encode("utf-8") if isinstance(note, str) else note
    origin = raw.split(b"\n", 1)[0].decode("ascii", errors="replace")
    if isinstance(keys, Mapping):
        signing.check_name(origin)
        named = [VerifierKey(origin, kid, key) for kid, key in keys.items()]
        verifiers = [k for k in named if signing.key_hash(origin, k.key).hex() == k.key_id]
    else:
        verifiers = list(keys)
    opened = signing.open_note(raw, verifiers)
    lines = opened.text.split("\n")[:-1]
    if len(lines) < 4 or lines[0] != opened.signed_by[0].name:
        raise NoteError("not a checkpoint of this log (origin, size, root hash, time)")
    if not _SIZE.fullmatch(lines[1]):
        raise NoteError("the checkpoint's tree size is not a number")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("the checkpoint's root hash is not base64") from None
    if len(root) != 32:
        raise NoteError("the checkpoint's root hash is not a SHA-256 hash")
    when = next((m for m in map(_TIME.fullmatch, lines[3:]) if m), None)
    if when is None:
        raise NoteError("the checkpoint has no time line")
    try:
        signed_at = dt.datetime.strptime(when.group(1), TIME_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise NoteError("the checkpoint's time is not a date") from None
    text = raw.decode("utf-8")
    return Checkpoint(int(lines[1]), root, signed_at, opened.signed_by[0].key_id, text, lines[0])
