"""A witness: from another host, keep the log's checkpoints and check that each new one extends
the last one kept. Once a witness has kept a checkpoint, a rewrite of anything it covers shows,
even if the signing key is stolen later: the rewritten tree has a different root, and no
consistency proof joins the two.

The store is a folder of append-only files:
- `keys`: the log's public keys this witness trusts, one JSON record a line (records/signing.py's
  KeyRecord): the first pinned on first use (or given with --key), each later one accepted only
  through a handover signed by the key before it (the site's /ledger/key/history), or given
  with --key by the witness's operator. Whatever the key, a new checkpoint must still extend
  the last one kept.
- `checkpoints`: every checkpoint kept, one JSON object a line, with the note as published.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from broadcaster.core import merkle, owner_only
from broadcaster.core.errors import BadInput
from broadcaster.records import signing
from broadcaster.records.checkpoints import Checkpoint, parse_and_verify
from broadcaster.records.signing import KeyRecord, NoteError, VerifierKey, now_text

TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 256 * 1024  # a proof is a few KB; the key history a few per rotation
MAX_PROOF_HASHES = 128


@dataclass(frozen=True)
class Observation:
    ok: bool
    size: int | None = None  # the checkpoint fetched
    kept: bool = False
    previous_size: int | None = None
    key_id: str | None = None
    problem: str | None = None

    @property
    def view(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @property
    def summary(self) -> str:
        if not self.kept:
            return f"checkpoint {self.size} already kept: nothing new"
        since = f", consistent with {self.previous_size}" if self.previous_size else " (first)"
        return f"kept checkpoint {self.size} signed by key {self.key_id}{since}"


def _fetch(url: str) -> bytes:
    try:
        with requests.get(url, timeout=TIMEOUT_S, stream=True) as response:
            if response.status_code != 200:
                raise BadInput(f"{url} answered {response.status_code}")
            body = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise BadInput(f"cannot fetch {url}: {type(exc).__name__}") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise BadInput(f"{url} answered with more than {MAX_RESPONSE_BYTES} bytes")
    return body


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _append(path: Path, record: dict[str, Any]) -> None:
    owner_only.ensure_file(path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


@contextmanager
def _locked(store: Path) -> Iterator[None]:
    """One witness run at a time per store."""
    owner_only.ensure_folder(store)
    with (store / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _pinned(store: Path, base: str, key_text: str | None) -> list[VerifierKey]:
    """The keys this witness trusts. Each was checked as it joined the store (the store is this
    witness's own); `--key` adds one by the operator's decision, e.g. the district's new key
    after it lost the old one. The log's own key is taken on trust only by an empty store."""
    keys = pinned_keys(store)
    given = _parse_key(key_text) if key_text else None
    if given is not None and given.key_id not in {k.key_id for k in keys}:
        _append(store / "keys", KeyRecord(given.key_id, given.text, now_text()).__dict__)
        return [*keys, given]
    if keys:
        return keys
    key = _parse_key(_fetch(f"{base}/ledger/key").decode("ascii", errors="replace"))
    _append(store / "keys", KeyRecord(key.key_id, key.text, now_text()).__dict__)
    return [key]


def pinned_keys(store: Path) -> list[VerifierKey]:
    """The keys this witness trusts, as its `keys` file lists them (BadInput: not readable)."""
    try:
        return [_parse_key(r["verifier_key"]) for r in _lines(store / "keys")]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{store / 'keys'} cannot be read as verifier keys ({exc})") from None


def _parse_key(text: str) -> VerifierKey:
    try:
        return signing.parse_verifier_key(text)
    except NoteError as exc:
        raise BadInput(f"not the log's public key: {exc}") from None


def _follow_rotation(store: Path, base: str, keys: list[VerifierKey]) -> list[VerifierKey]:
    """The keys that the site's history hands over to from the newest one trusted, each
    handover checked; they join the store's keys."""
    body = _fetch(f"{base}/ledger/key/history").decode("utf-8", errors="replace")
    try:
        history = [KeyRecord(**json.loads(line)) for line in body.splitlines() if line]
    except (ValueError, TypeError):
        raise BadInput(f"{base}/ledger/key/history is not a key history") from None
    ids = [r.key_id for r in history]
    if keys[-1].key_id not in ids:
        return []
    start = ids.index(keys[-1].key_id)
    newer = history[start + 1 :]
    anchor = KeyRecord(keys[-1].key_id, keys[-1].text, "")
    chained = signing.chain_keys([anchor, *newer])[1:]  # NoteError: a forged handover
    for record in newer:
        _append(store / "keys", record.__dict__)
    return chained


def _consistency(base: str, old: int, new: int) -> list[bytes]:
    body = _fetch(f"{base}/ledger/consistency?from={old}&to={new}")
    try:
        proof = json.loads(body)["proof"]
        if not isinstance(proof, list) or len(proof) > MAX_PROOF_HASHES:
            raise ValueError
        return [base64.b64decode(h, validate=True) for h in proof]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadInput(f"{base}/ledger/consistency did not answer with a proof") from None


def observe(url: str, store: Path, key_text: str | None = None) -> Observation:
    """Fetch, verify and keep the log's latest checkpoint (see the module's docstring)."""
    base = url.rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise BadInput(f"{url[:80]!r} is not a web address (https://...)")
    with _locked(store):
        keys = _pinned(store, base, key_text)
        note = _fetch(f"{base}/ledger/checkpoint")
        try:
            checkpoint = parse_and_verify(note, keys)
        except NoteError as first:
            try:
                checkpoint = parse_and_verify(note, keys + _follow_rotation(store, base, keys))
            except NoteError as exc:
                return Observation(False, problem=f"the checkpoint is refused: {exc or first}")
        kept = _lines(store / "checkpoints")
        last = kept[-1] if kept else None
        previous = last["size"] if last else None
        problem = _problem(base, checkpoint, last)
        if problem:
            return Observation(False, checkpoint.size, False, previous, None, problem)
        if previous == checkpoint.size:
            return Observation(True, checkpoint.size, False, previous, checkpoint.key_id)
        _append(
            store / "checkpoints",
            {**checkpoint.view, "note": checkpoint.note, "kept_at": now_text(), "from": base},
        )
        return Observation(True, checkpoint.size, True, previous, checkpoint.key_id)


def _problem(base: str, new: Checkpoint, last: dict[str, Any] | None) -> str | None:
    if last is None:
        return None
    old_size, old_root = last["size"], base64.b64decode(last["root"])
    if new.size < old_size:
        return f"the log's checkpoint went back from size {old_size} to {new.size}"
    if new.size == old_size:
        if new.root != old_root:
            return f"two different trees of size {new.size}: the log was rewritten"
        return None
    proof = _consistency(base, old_size, new.size)
    if not merkle.verify_consistency(old_size, new.size, old_root, new.root, proof):
        return (
            f"the tree of size {new.size} does not extend the tree of size {old_size} kept on "
            f"{last['kept_at'][:10]}: entries up to {old_size} were rewritten"
        )
    return None


def seen(store: Path, checkpoint: Checkpoint) -> bool:
    """Whether this witness kept `checkpoint` (same size and root), for `verify-export
    --witness`."""
    root = base64.b64encode(checkpoint.root).decode("ascii")
    return any(
        r["size"] == checkpoint.size and r["root"] == root for r in _lines(store / "checkpoints")
    )
