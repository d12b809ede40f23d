"""The signature and the ledger evidence of a public-records export (issue 16, item 5).

With a signing key configured, an export also carries:
- checkpoint.txt: a signed checkpoint of the ledger's Merkle tree that covers its whole slice
  (the newest one if it does, else one signed now);
- proofs.jsonl: for every ledger entry in the slice, its RFC 9162 inclusion proof in that tree;
- keys.txt: the log's public keys (verifier keys, one a line), so the folder can be checked as
  it is; whose keys they are is for `--key` (the key /ledger/key publishes) or `--witness` to
  say;
- signature.txt: a signed note listing the SHA-256 of every other file, manifest.json included.
  An export whose files were edited and whose manifest was recomputed still fails: the signed
  list names the file, and only the key's holder can sign another list.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from broadcaster.core import ledger_tree
from broadcaster.records import checkpoints, signing
from broadcaster.records.checkpoints import Checkpoint
from broadcaster.records.signing import Signer, VerifierKey

CHECKPOINT = "checkpoint.txt"
PROOFS = "proofs.jsonl"
KEYS = "keys.txt"
SIGNATURE = "signature.txt"
TITLE = "broadcaster records export"


def covering_checkpoint(session: Session, signer: Signer, last_seq: int) -> Checkpoint:
    """The newest checkpoint when it covers entry `last_seq`, else one signed now (the ledger
    has grown since the newest, by the very entries the export holds)."""
    newest = checkpoints.latest(session)
    if newest is not None and newest.size >= last_seq:
        return newest
    signed = checkpoints.sign_checkpoint(session, signer)
    if signed is None:  # nothing but checkpoints since the newest: no slice ends there
        raise LookupError(f"no checkpoint covers ledger entry {last_seq}")
    return signed


def evidence(session: Session, signer: Signer, rows: list[dict[str, Any]]) -> dict[str, bytes]:
    """checkpoint.txt, proofs.jsonl and keys.txt for a ledger slice (its rows, in order)."""
    seqs = [row["seq"] for row in rows]
    checkpoint = covering_checkpoint(session, signer, max(seqs, default=0))
    proofs = ledger_tree.inclusion_proofs(session, seqs, checkpoint.size)
    lines = (
        json.dumps({"seq": seq, "proof": [_b64(h) for h in proofs[seq]]}) + "\n" for seq in seqs
    )
    keys = signing.chain_keys(signing.key_records(session))
    return {
        CHECKPOINT: checkpoint.note.encode("utf-8"),
        PROOFS: "".join(lines).encode("utf-8"),
        KEYS: "".join(f"{k.text}\n" for k in keys).encode("ascii"),
    }


def signed_list(files: dict[str, bytes]) -> str:
    """The note text that signature.txt signs: the digest and name of every file."""
    lines = "".join(
        f"{hashlib.sha256(data).hexdigest()} {name}\n" for name, data in sorted(files.items())
    )
    return f"{TITLE}\n{lines}"


def signature(signer: Signer, files: dict[str, bytes]) -> bytes:
    return signing.sign_note(signed_list(files), signer).encode("utf-8")


def read_signed_list(note: bytes, keys: list[VerifierKey]) -> tuple[str, dict[str, str]]:
    """The key id that signed the note and the file digests it lists (NoteError otherwise)."""
    opened = signing.open_note(note, keys)
    lines = opened.text.split("\n")[:-1]
    if not lines or lines[0] != TITLE:
        raise signing.NoteError("it is not the signed file list of a records export")
    listed: dict[str, str] = {}
    for line in lines[1:]:
        digest, _, name = line.partition(" ")
        if len(digest) != 64 or not name:
            raise signing.NoteError("a line of it is not 'SHA256 FILENAME'")
        listed[name] = digest
    return opened.signed_by[0].key_id, listed


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
