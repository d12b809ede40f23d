"""Checking a public-records export (export.py) with nothing but the folder.

A signed export first: signature.txt against the trusted keys (`--key`, a witness's pinned keys,
or else the keys.txt it carries, which only says who claims to have signed), then every file's
SHA-256 against the list it signs (so an edited file is named even when manifest.json was
recomputed to match). Then every file's SHA-256 against manifest.json, the manifest against its
own seal, the file list against the folder, then the ledger slice: every entry's hash, every
link to the entry before it (a gap is an error, except before a destruction record that an entry
of the slice names), every included payload against its hash, every purged payload against its
destruction record. Last, for a signed export: checkpoint.txt's signature (and, with a witness,
that the witness kept that checkpoint) and every entry's inclusion proof in the tree it signed.
The first problem found is named, with its file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster.core import ledger, merkle
from broadcaster.core.errors import BadInput
from broadcaster.records import checkpoints, export_signing, signing, witness
from broadcaster.records.checkpoints import Checkpoint
from broadcaster.records.export_files import FORMAT, MANIFEST, manifest_bytes
from broadcaster.records.export_signing import CHECKPOINT, KEYS, PROOFS, SIGNATURE
from broadcaster.records.signing import NoteError, VerifierKey

LEDGER_FILE = "ledger.jsonl"


@dataclass(frozen=True)
class ExportCheck:
    ok: bool
    files: int
    entries: int = 0
    problem: str | None = None
    bad_file: str | None = None
    signed_by: str | None = None
    checkpoint_size: int | None = None
    notes: tuple[str, ...] = ()


class _Bad(Exception):
    def __init__(self, file: str, problem: str) -> None:
        super().__init__(problem)
        self.file, self.problem = file, problem


UNSIGNED = (
    "this export is not signed (the district had no signing key): it is checked against itself"
)
SELF_KEYS = (
    "signed by a key the export itself names (keys.txt): check it is the district's with --key "
    "(the key /ledger/key publishes) or --witness"
)


def verify_export(
    folder: Path, keys: list[VerifierKey] | None = None, witness_store: Path | None = None
) -> ExportCheck:
    """`keys`: the keys to trust; `witness_store`: a witness's folder, whose pinned keys are
    trusted and which must have kept the export's checkpoint."""
    notes: list[str] = []
    try:
        manifest = _manifest(folder)
        signed = _signature(folder, manifest, keys, witness_store, notes)
        files = _files(folder, manifest)
        rows = _ledger(folder, manifest)
        checkpoint = _evidence(folder, rows, signed[1], witness_store) if signed else None
    except _Bad as bad:
        return ExportCheck(False, 0, 0, bad.problem, bad.file)
    return ExportCheck(
        True,
        files,
        len(rows),
        signed_by=signed[0] if signed else None,
        checkpoint_size=checkpoint.size if checkpoint else None,
        notes=tuple(notes),
    )


def _trusted(
    folder: Path, keys: list[VerifierKey] | None, witness_store: Path | None
) -> list[VerifierKey]:
    if keys:
        return keys
    if witness_store:
        where = str(witness_store / "keys")
        try:
            pinned = witness.pinned_keys(witness_store)
        except BadInput as exc:
            raise _Bad(where, f"the witness's keys: {exc}") from None
        if not pinned:
            raise _Bad(where, f"the witness {witness_store} has no key pinned: is it a witness?")
        return pinned
    path = folder / KEYS
    try:
        return [signing.parse_verifier_key(line) for line in path.read_text("utf-8").splitlines()]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _Bad(str(path), f"{KEYS} cannot be read as verifier keys ({exc})") from None


def _signature(
    folder: Path,
    manifest: dict[str, Any],
    keys: list[VerifierKey] | None,
    witness_store: Path | None,
    notes: list[str],
) -> tuple[str, list[VerifierKey]] | None:
    """The key id that signed the export (its files checked against the signed list) and the
    keys trusted to check it, or None for an unsigned export, which is refused when a key or
    witness was given to check it."""
    path = folder / SIGNATURE
    claimed = manifest.get("signed_by")
    if not path.exists():
        if claimed:
            raise _Bad(SIGNATURE, f"{SIGNATURE} is missing, yet key {claimed} signed this export")
        if keys or witness_store:
            raise _Bad(SIGNATURE, "this export is not signed: there is nothing to check the key on")
        notes.append(UNSIGNED)
        return None
    trusted = _trusted(folder, keys, witness_store)
    try:
        key_id, listed = export_signing.read_signed_list(path.read_bytes(), trusted)
    except (NoteError, OSError) as exc:
        raise _Bad(SIGNATURE, f"{SIGNATURE} does not verify: {exc}") from None
    if not keys and not witness_store:
        notes.append(SELF_KEYS)
    present = {p.name for p in folder.iterdir()} - {SIGNATURE}
    # The tables before manifest.json: a forger who edits one recomputes the manifest too.
    for name in sorted(present | set(listed), key=lambda n: (n == MANIFEST, n)):
        where = folder / name
        if name not in listed:
            raise _Bad(name, f"{name} is not in the file list key {key_id} signed")
        if name not in present or not where.is_file():
            raise _Bad(name, f"{name} is in the signed file list but missing")
        if hashlib.sha256(where.read_bytes()).hexdigest() != listed[name]:
            raise _Bad(
                name,
                f"{name} was changed: its SHA-256 does not match the file list key {key_id} "
                f"signed ({SIGNATURE})",
            )
    return key_id, trusted


def _evidence(
    folder: Path,
    rows: list[dict[str, Any]],
    trusted: list[VerifierKey],
    witness_store: Path | None,
) -> Checkpoint:
    """The checkpoint verifies (and the witness kept it); every entry's inclusion proof in the
    tree it signed verifies."""
    try:
        checkpoint = checkpoints.parse_and_verify((folder / CHECKPOINT).read_bytes(), trusted)
    except (NoteError, OSError) as exc:
        raise _Bad(CHECKPOINT, f"{CHECKPOINT} does not verify: {exc}") from None
    if witness_store is not None and not witness.seen(witness_store, checkpoint):
        raise _Bad(
            CHECKPOINT,
            f"the witness {witness_store} never kept this checkpoint ({checkpoint.size} "
            "entries): the district may have shown it a different ledger",
        )
    try:
        lines = (folder / PROOFS).read_text(encoding="utf-8").splitlines()
        proofs = {
            int(item["seq"]): [base64.b64decode(h, validate=True) for h in item["proof"]]
            for item in map(json.loads, lines)
        }
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise _Bad(PROOFS, f"{PROOFS} is not a list of inclusion proofs ({exc!r})") from None
    for row in rows:
        seq = row["seq"]
        if seq not in proofs:
            raise _Bad(PROOFS, f"{PROOFS} has no inclusion proof for ledger entry {seq}")
        if not merkle.verify_inclusion(
            seq - 1, checkpoint.size, bytes.fromhex(row["entry_hash"]), proofs[seq], checkpoint.root
        ):
            raise _Bad(
                LEDGER_FILE,
                f"{LEDGER_FILE}: entry {seq} is not in the ledger the checkpoint of "
                f"{checkpoint.size} entries signed (its inclusion proof fails)",
            )
    return checkpoint


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise _Bad(str(folder), f"{folder} is not a folder")
    if not path.is_file():
        raise _Bad(MANIFEST, f"{MANIFEST} is missing: this is not a broadcaster export")
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _Bad(MANIFEST, f"{MANIFEST} was changed: it is no longer valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _Bad(MANIFEST, f"{MANIFEST} was changed or is not a {FORMAT} manifest")
    # Written in one canonical layout and sealed, so that no byte of it can change unnoticed.
    if manifest_bytes(manifest) != raw:
        raise _Bad(
            MANIFEST, f"{MANIFEST} was changed: it does not match its seal (manifest_sha256)"
        )
    return manifest


def _files(folder: Path, manifest: dict[str, Any]) -> int:
    listed: dict[str, str] = manifest["files"]
    present = {p.name for p in folder.iterdir()} - {MANIFEST, SIGNATURE}
    for name in sorted(present | set(listed)):
        path = folder / name
        if name not in listed:
            raise _Bad(name, f"{name} is not listed in the manifest")
        if name not in present or not path.is_file():
            raise _Bad(name, f"{name} is listed in the manifest but missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != listed[name]:
            raise _Bad(name, f"{name} was changed: its SHA-256 does not match the manifest")
    return len(listed) + 1


def _ledger(folder: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return _walk(folder, manifest)
    except (ValueError, KeyError, TypeError) as exc:  # readable JSON, but not ledger rows
        raise _Bad(LEDGER_FILE, f"{LEDGER_FILE} is not a ledger slice ({exc!r})") from None


def _walk(folder: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    lines = (folder / LEDGER_FILE).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    destroyed = {
        row["seq"]: set(json.loads(row["payload"])["entries"])
        for row in rows
        if row["event"] == ledger.PURGE_EVENT and row["payload_state"] == "included"
    }
    named = {row["purged_by"] for row in rows if row["purged_by"]}
    previous: dict[str, Any] | None = None
    for row in rows:
        problem = _check_entry(row, previous, destroyed, named)
        if problem:
            raise _Bad(LEDGER_FILE, f"{LEDGER_FILE}: entry {row['seq']} {problem}")
        previous = row
    bounds = manifest["ledger"]
    if rows and (rows[0]["seq"] != bounds["first_seq"] or rows[-1]["seq"] != bounds["last_seq"]):
        raise _Bad(LEDGER_FILE, f"{LEDGER_FILE} does not span the entries the manifest names")
    return rows


def _check_entry(
    row: dict[str, Any],
    previous: dict[str, Any] | None,
    destroyed: dict[int, set[int]],
    named: set[int],
) -> str | None:
    recomputed = ledger.link_hash(
        row["seq"],
        row["created_at"],
        row["event"],
        row["message_id"],
        row["actor"],
        row["payload_sha256"],
        row["prev_hash"],
    )
    if recomputed != row["entry_hash"]:
        return "was changed: its hash does not match its contents"
    if previous is not None:
        if row["seq"] <= previous["seq"]:
            return "is out of order"
        if row["seq"] == previous["seq"] + 1:
            if row["prev_hash"] != previous["entry_hash"]:
                return f"does not follow entry {previous['seq']}"
        elif row["seq"] not in named or row["event"] != ledger.PURGE_EVENT:
            # Only a later destruction record of the slice's payloads may stand apart.
            return f"follows entry {previous['seq']}: the entries between are missing"
    state, payload = row["payload_state"], row["payload"]
    if state == "included":
        if payload is None or ledger.sha256(payload) != row["payload_sha256"]:
            return "has a payload that does not match its hash"
    elif state == "purged":
        if row["seq"] not in destroyed.get(row["purged_by"], set()):
            return (
                f"is purged, but no destruction record here lists it (purged_by {row['purged_by']})"
            )
    elif state == "missing":
        return "lost its payload without a destruction record"
    elif state not in ("redacted", "omitted"):
        return f"has an unknown payload_state {state!r}"
    return None
