"""`records verify`: the chain, the Merkle tree, and the newest signed checkpoint.

Each step catches what the one before cannot:
1. the hash chain (core/ledger.verify): an entry changed, removed or reordered in place;
2. the tree rebuilt from the entry rows against the stored nodes (core/ledger_tree.recompute):
   a stored node rewritten, or nodes left over from entries cut off the end;
3. the checkpoints (records/checkpoints.py), signed with a key the database does not hold: every
   one the ledger names is still stored; the newest one's signature verifies; the tree it signed
   is a prefix of today's (its size is not past today's end, its root is the root of today's
   first entries, and the consistency proof from it to today verifies). An insider who cuts the
   tail and rewrites the head, or rewrites an entry and recomputes every later hash and node,
   passes 1 and 2 but not 3: they cannot sign.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from broadcaster.core import ledger, ledger_tree, merkle
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BadInput
from broadcaster.records import checkpoints, signing
from broadcaster.records.checkpoints import Checkpoint, Keys
from broadcaster.records.signing import NoteError, VerifierKey

NO_CHECKPOINT = "no checkpoint has been signed yet: the ledger is checked against itself only"


@dataclass
class RecordsVerification:
    ok: bool
    entries: int
    tree_size: int
    checkpoint: Checkpoint | None = None
    problem: str | None = None
    bad_seq: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def view(self) -> dict[str, Any]:
        """The `--json` shape the issue gives (`bad_entry`: the old name of `bad_seq`)."""
        cp = self.checkpoint
        return {
            "ok": self.ok,
            "entries": self.entries,
            "tree_size": self.tree_size,
            "checkpoint": (
                {
                    "size": cp.size,
                    "signed_at": cp.signed_at.strftime(checkpoints.TIME_FORMAT),
                    "key_id": cp.key_id,
                }
                if cp
                else None
            ),
            "problem": self.problem,
            "bad_seq": self.bad_seq,
            "bad_entry": self.bad_seq,
            "notes": self.notes,
        }


def trusted_keys(district: DistrictConfig) -> list[VerifierKey] | None:
    """The public keys in the `.pub-history` file beside the configured signing key (outside the
    database, so an insider who rewrites `ledger_keys` does not change them), or None."""
    path = district.signing_key_path
    if path is None or not signing.history_path(path).is_file():
        return None
    try:
        return signing.chain_keys(signing.read_history(signing.history_path(path)))
    except NoteError as exc:
        raise BadInput(f"the key history {signing.history_path(path)}: {exc}") from None


def verify_records(session: Session, keys: Keys | None = None) -> RecordsVerification:
    """Run the three checks in one snapshot (the caller's); `keys`: the checkpoint keys to trust
    (default: the database's key history, its handovers checked)."""
    chain = ledger.verify(session)
    if not chain.ok:
        return RecordsVerification(False, chain.entries, 0, None, chain.problem, chain.bad_seq)
    signed = checkpoints.recent(session, limit=None)  # as their rows say; notes checked
    tree = ledger_tree.recompute(session, at=[c.size for c in signed])
    result = RecordsVerification(True, chain.entries, tree.size)
    if tree.bad_seq is not None:
        return _broken(result, tree.problem, tree.bad_seq)
    missing = checkpoints.unrecorded(session)
    if missing is not None:
        return _broken(
            result,
            f"the checkpoint that ledger entry {missing} records is missing: it was deleted",
            missing,
        )
    if not signed:
        result.notes.append(NO_CHECKPOINT)
        return result
    trusted = signing.public_keys(session) if keys is None else keys
    try:
        # The signed note is what counts, not the row's copy of its size and root.
        newest = result.checkpoint = checkpoints.parse_and_verify(signed[0].note, trusted)
    except NoteError as exc:
        return _broken(
            result,
            f"the newest checkpoint ({signed[0].size} entries) does not verify: {exc}",
            signed[0].size,
        )
    if newest.size > tree.size:
        return _broken(
            result,
            f"the checkpoint signed {_when(newest)} covers {newest.size} entries but the ledger "
            f"ends at {tree.size}: entries {tree.size + 1}..{newest.size} were removed",
            tree.size + 1,
        )
    if newest.size not in tree.roots_at:  # the row's copy of the size was edited
        tree.roots_at.update(ledger_tree.recompute(session, at=[newest.size]).roots_at)
    if tree.roots_at.get(newest.size) != newest.root:
        # The newest checkpoint that still matches bounds where the rewrite starts.
        good = next((c.size for c in signed if _matches(c, tree.roots_at, trusted)), 0)
        return _broken(
            result,
            f"the ledger's first {newest.size} entries are not those the checkpoint signed "
            f"{_when(newest)}: entries after {good} were rewritten (every later hash recomputed)",
            good + 1,
        )
    proof = ledger_tree.consistency_proof(session, newest.size, tree.size)
    if not merkle.verify_consistency(newest.size, tree.size, newest.root, tree.root, proof):
        return _broken(
            result,
            f"today's tree does not extend the one the checkpoint signed {_when(newest)}",
            newest.size + 1,
        )
    return result


def _matches(row: Checkpoint, roots_at: dict[int, bytes], keys: Keys) -> bool:
    if roots_at.get(row.size) != row.root:
        return False
    try:
        signed = checkpoints.parse_and_verify(row.note, keys)
    except NoteError:
        return False
    return signed.size == row.size and signed.root == row.root


def _when(checkpoint: Checkpoint) -> str:
    return checkpoint.signed_at.strftime(checkpoints.TIME_FORMAT)


def _broken(result: RecordsVerification, problem: str | None, seq: int) -> RecordsVerification:
    result.ok, result.problem, result.bad_seq = False, problem, seq
    return result
