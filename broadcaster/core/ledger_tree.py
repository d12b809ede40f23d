"""The ledger's Merkle tree (RFC 9162), stored beside the chain and grown in the same transaction.

Leaf `seq - 1` is ledger entry `seq`, its data the 32 bytes of the entry's hash: the entry hash
commits to every field and to the payload's hash, so a purged payload leaves the tree as it was.

What is stored, so that appending and proving stay O(log n) without a rebuild:
- `ledger_head.tree_frontier`: the compact range (the complete subtrees the tree ends in, one
  per bit of its size), updated with the head; an append hashes from it alone.
- `ledger_tree_nodes`: every complete subtree of 2^STORED_LEVEL leaves and up, written as an
  append completes it (about one row per 8 entries). A proof's lower hashes, inside one block of
  16 leaves, are hashed from those entries' rows when asked for.
The stored rows are only a cache of what the entries determine: `recompute` rebuilds the tree
from the entries alone, which is how `records verify` notices stored nodes that were rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, and_, insert, or_, select
from sqlalchemy.orm import Session

from broadcaster.core import merkle
from broadcaster.core.models import LedgerEntry, LedgerHead, LedgerTreeNode

STORED_LEVEL = 4
_NODES = cast(Table, LedgerTreeNode.__table__)
_STREAM = 10_000
_KEYS_PER_QUERY = 500


class TreeError(ValueError):
    """A size or entry outside the tree, or a stored node that is missing."""


def decode_frontier(size: int, frontier: bytes | None) -> list[bytes]:
    hashes = [
        (frontier or b"")[i : i + merkle.HASH_SIZE]
        for i in range(0, len(frontier or b""), merkle.HASH_SIZE)
    ]
    if len(hashes) != len(merkle.frontier_levels(size)):
        raise TreeError(f"the stored tree's right edge does not fit its {size} entries")
    return hashes


def grow(session: Session, size: int, frontier: bytes | None, entry_hashes: list[str]) -> bytes:
    """Add the leaves of new entries (their hex hashes, in order) to the tree of `size` leaves,
    in the caller's transaction; returns the new compact range for the ledger head."""
    hashes, completed = merkle.append_leaves(
        size, _edge(session, size, frontier), [bytes.fromhex(h) for h in entry_hashes], STORED_LEVEL
    )
    if completed:
        session.execute(
            insert(_NODES), [{"level": lv, "idx": i, "hash": h} for lv, i, h in completed]
        )
    return b"".join(hashes)


def _edge(session: Session, size: int, frontier: bytes | None) -> list[bytes]:
    """The compact range of the tree of `size` leaves: the head's copy, or when that was lost or
    edited, the same hashes from the stored nodes and the entries. What is being recorded (an
    alert's approval, say) does not wait on it; verify reports any node that was edited."""
    try:
        return decode_frontier(size, frontier)
    except TreeError:
        return _hashes(session, merkle.complete_parts(0, size))


def tree_size(session: Session) -> int:
    head = session.get(LedgerHead, 1)
    return head.seq if head else 0


def root(session: Session) -> tuple[int, bytes]:
    """Today's size and root, from the compact range the head keeps."""
    head = session.get(LedgerHead, 1)
    if head is None or head.seq == 0:
        return 0, merkle.EMPTY_ROOT
    return head.seq, merkle.fold(_edge(session, head.seq, head.tree_frontier))


def root_at(session: Session, size: int) -> bytes:
    """The root of the tree's first `size` leaves (0 < size <= tree size), from stored nodes."""
    _check_sizes(session, size)
    current, root_now = root(session)
    if size == current:  # today's tree: its compact range is in the head
        return root_now
    return merkle.fold(_hashes(session, merkle.complete_parts(0, size)))


def inclusion_proof(session: Session, seq: int, size: int) -> list[bytes]:
    """The audit path of entry `seq` in the tree of its first `size` entries."""
    _check_sizes(session, size)
    if not 1 <= seq <= size:
        raise TreeError(f"entry {seq} is not in a tree of {size} entries")
    return inclusion_proofs(session, [seq], size)[seq]


def inclusion_proofs(session: Session, seqs: list[int], size: int) -> dict[int, list[bytes]]:
    """The audit paths of many entries at once (an export's slice): every hash they need is
    read in a few queries, not a few per entry."""
    _check_sizes(session, size)
    bad = next((seq for seq in seqs if not 1 <= seq <= size), None)
    if bad is not None:
        raise TreeError(f"entry {bad} is not in a tree of {size} entries")
    return _proofs(session, {seq: merkle.inclusion_ranges(seq - 1, size) for seq in seqs})


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    """The proof that the tree of `old_size` entries is a prefix of that of `new_size`."""
    _check_sizes(session, new_size)
    if not 0 < old_size <= new_size:
        raise TreeError(f"no consistency proof from {old_size} to {new_size} entries")
    return _proofs(session, {new_size: merkle.consistency_ranges(old_size, new_size)})[new_size]


def _check_sizes(session: Session, size: int) -> None:
    have = tree_size(session)
    if not 0 < size <= have:
        raise TreeError(f"the tree has {have} entries, not {size}")


def _proofs(session: Session, ranges: dict[int, list[tuple[int, int]]]) -> dict[int, list[bytes]]:
    """Each key's proof from its subtree ranges: every node any of them needs is read once."""
    needed = (p for rs in ranges.values() for a, b in rs for p in merkle.complete_parts(a, b))
    flat = list(dict.fromkeys(needed))
    known = dict(zip(flat, _hashes(session, flat), strict=True))

    def node(level: int, i: int) -> bytes:
        return known[(level, i)]

    return {key: merkle.proof_from(rs, node) for key, rs in ranges.items()}


def _hashes(session: Session, parts: list[tuple[int, int]]) -> list[bytes]:
    """The hashes of complete subtrees (level, index): stored ones read by key, the lower ones
    hashed from their entries (read as a few runs of consecutive entries)."""
    stored = sorted({p for p in parts if p[0] >= STORED_LEVEL})
    found: dict[tuple[int, int], bytes] = {}
    for start in range(0, len(stored), _KEYS_PER_QUERY):
        # By level, then index: both databases then look them up in the primary key's index
        # (a row-value IN made SQLite scan the table).
        by_level: dict[int, list[int]] = {}
        for level, i in stored[start : start + _KEYS_PER_QUERY]:
            by_level.setdefault(level, []).append(i)
        nodes = session.execute(
            select(LedgerTreeNode.level, LedgerTreeNode.idx, LedgerTreeNode.hash).where(
                or_(
                    *(
                        and_(LedgerTreeNode.level == level, LedgerTreeNode.idx.in_(idxs))
                        for level, idxs in by_level.items()
                    )
                )
            )
        )
        found.update({(lv, i): h for lv, i, h in nodes})
    low = [p for p in parts if p[0] < STORED_LEVEL]
    spans = [(i << lv, (i + 1) << lv) for lv, i in low]
    leaves: dict[int, str] = {}
    for a, b in _runs(spans):
        entries = session.execute(
            select(LedgerEntry.seq, LedgerEntry.entry_hash).where(
                LedgerEntry.seq > a, LedgerEntry.seq <= b
            )
        )
        leaves.update({seq: entry_hash for seq, entry_hash in entries})
    for (lv, i), (a, b) in zip(low, spans, strict=True):
        data = [bytes.fromhex(leaves[s]) for s in range(a + 1, b + 1) if s in leaves]
        if len(data) == b - a:
            found[(lv, i)] = merkle.root_of(data)
    missing = [p for p in parts if p not in found]
    if missing:
        level, i = missing[0]
        raise TreeError(
            f"the tree's node for entries {(i << level) + 1}..{(i + 1) << level} is missing"
        )
    return [found[p] for p in parts]


def _runs(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Leaf intervals merged where they touch or overlap."""
    runs: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if runs and a <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(b, runs[-1][1]))
        else:
            runs.append((a, b))
    return runs


@dataclass
class Recomputed:
    """The tree as the entries alone make it, and the first stored node that disagrees."""

    size: int
    root: bytes
    roots_at: dict[int, bytes] = field(default_factory=dict)
    bad_seq: int | None = None  # the first entry under a stored node that differs or is missing
    problem: str | None = None


def recompute(session: Session, at: Iterable[int] = ()) -> Recomputed:
    """Rebuild the tree from the entry rows (streamed), compare every stored node and the head's
    compact range with it, and keep the roots at the sizes `at` (a checkpoint's, say)."""
    wanted = set(at)
    stored = {
        (lv, i): h
        for lv, i, h in session.execute(
            select(LedgerTreeNode.level, LedgerTreeNode.idx, LedgerTreeNode.hash)
        )
    }
    result = Recomputed(0, merkle.EMPTY_ROOT)
    size, frontier = 0, list[bytes]()
    rows = session.execute(
        select(LedgerEntry.entry_hash)
        .order_by(LedgerEntry.seq)
        .execution_options(yield_per=_STREAM)
    ).scalars()
    for batch in rows.partitions(_STREAM):
        leaves = [bytes.fromhex(h) for h in batch]
        cuts = sorted(n - size for n in wanted if size < n <= size + len(leaves))
        start = 0
        for end in [*cuts, len(leaves)]:
            frontier, completed = merkle.append_leaves(
                size, frontier, leaves[start:end], STORED_LEVEL
            )
            size += end - start
            start = end
            for level, i, h in completed:
                if result.bad_seq is None and stored.pop((level, i), None) != h:
                    result.bad_seq = (i << level) + 1
                    result.problem = (
                        f"the stored tree node for entries {result.bad_seq}..{(i + 1) << level}"
                        " does not match the entries: it was rewritten or removed"
                    )
            if size in wanted:
                result.roots_at[size] = merkle.fold(frontier)
    result.size = size
    result.root = merkle.fold(frontier) if size else merkle.EMPTY_ROOT
    if result.bad_seq is None and stored:
        result.bad_seq = size + 1
        result.problem = (
            f"the tree has nodes for entries up to {max((i + 1) << lv for lv, i in stored)} "
            f"but the ledger ends at {size}: entries after {size} were removed"
        )
    head = session.get(LedgerHead, 1)
    if result.bad_seq is None and head is not None and head.tree_frontier != b"".join(frontier):
        result.bad_seq = size
        result.problem = "the tree's right edge kept in the ledger head does not match the entries"
    return result
