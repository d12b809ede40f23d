"""Checking a public-records export (export.py) with nothing but the folder.

Every file's SHA-256 against manifest.json, the manifest against its own seal, the file list
against the folder, then the ledger slice: every entry's hash, every link to the entry before it,
every included payload against its hash, every purged payload against its destruction record.
The first problem found is named, with its file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster.core import ledger
from broadcaster.records.export_files import FORMAT, MANIFEST, manifest_bytes

LEDGER_FILE = "ledger.jsonl"


@dataclass(frozen=True)
class ExportCheck:
    ok: bool
    files: int
    entries: int = 0
    problem: str | None = None
    bad_file: str | None = None


class _Bad(Exception):
    def __init__(self, file: str, problem: str) -> None:
        super().__init__(problem)
        self.file, self.problem = file, problem


def verify_export(folder: Path) -> ExportCheck:
    try:
        manifest = _manifest(folder)
        files = _files(folder, manifest)
        entries = _ledger(folder, manifest)
    except _Bad as bad:
        return ExportCheck(False, 0, 0, bad.problem, bad.file)
    return ExportCheck(True, files, entries)


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
    present = {p.name for p in folder.iterdir()} - {MANIFEST}
    for name in sorted(present | set(listed)):
        path = folder / name
        if name not in listed:
            raise _Bad(name, f"{name} is not listed in the manifest")
        if name not in present or not path.is_file():
            raise _Bad(name, f"{name} is listed in the manifest but missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != listed[name]:
            raise _Bad(name, f"{name} was changed: its SHA-256 does not match the manifest")
    return len(listed) + 1


def _ledger(folder: Path, manifest: dict[str, Any]) -> int:
    try:
        return _walk(folder, manifest)
    except (ValueError, KeyError, TypeError) as exc:  # readable JSON, but not ledger rows
        raise _Bad(LEDGER_FILE, f"{LEDGER_FILE} is not a ledger slice ({exc!r})") from None


def _walk(folder: Path, manifest: dict[str, Any]) -> int:
    lines = (folder / LEDGER_FILE).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    destroyed = {
        row["seq"]: set(json.loads(row["payload"])["entries"])
        for row in rows
        if row["event"] == ledger.PURGE_EVENT and row["payload_state"] == "included"
    }
    previous: dict[str, Any] | None = None
    for row in rows:
        problem = _check_entry(row, previous, destroyed)
        if problem:
            raise _Bad(LEDGER_FILE, f"{LEDGER_FILE}: entry {row['seq']} {problem}")
        previous = row
    bounds = manifest["ledger"]
    if rows and (rows[0]["seq"] != bounds["first_seq"] or rows[-1]["seq"] != bounds["last_seq"]):
        raise _Bad(LEDGER_FILE, f"{LEDGER_FILE} does not span the entries the manifest names")
    return len(rows)


def _check_entry(
    row: dict[str, Any], previous: dict[str, Any] | None, destroyed: dict[int, set[int]]
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
        if row["seq"] == previous["seq"] + 1 and row["prev_hash"] != previous["entry_hash"]:
            return f"does not follow entry {previous['seq']}"
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
