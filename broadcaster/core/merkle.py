"""Merkle tree hashing and proofs as RFC 9162 (Certificate Transparency 2.0) defines them.

Pure functions, no storage: core/ledger_tree.py keeps the ledger's tree in the database and
answers proofs with these. A tree over n leaves splits at k, the largest power of two below n;
every subtree the proofs name is either complete (2^level leaves starting at a multiple of
2^level) or runs to the tree's right edge, so `ranges` below are (start, end) leaf intervals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(size: int) -> int:
    """The largest power of two smaller than `size` (> 1): where RFC 9162 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


def root_of(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of the leaves' data, straight from the definition (for small slices)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes make PATH(index, D[size]), in proof order (bottom up)."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes make PROOF(old_size, D[new_size]) (SUBPROOF, bottom up)."""
    if not 0 < old_size < new_size:
        return []
    ranges: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while m != hi - lo:
        k = split(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        ranges.append((lo, hi))
    return ranges[::-1]


def complete_parts(start: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees, as (level, index), whose hashes make MTH(D[start:end]) for a range
    the tree has as a node, left to right (one part when the range is itself complete)."""
    parts: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1  # the biggest power of two that fits
        parts.append((level, start >> level))
        start += 1 << level
    return parts


def fold(parts: list[bytes]) -> bytes:
    """MTH of a range from its complete parts (left to right, sizes decreasing): RFC 9162's
    split puts the biggest part on the left, so the hashes combine from the right."""
    result = parts[-1]
    for part in reversed(parts[:-1]):
        result = node_hash(part, result)
    return result


def proof_from(ranges: list[tuple[int, int]], node: Callable[[int, int], bytes]) -> list[bytes]:
    """The hashes of these ranges given `node(level, index)`, the hash of a complete subtree."""
    return [fold([node(level, i) for level, i in complete_parts(a, b)]) for a, b in ranges]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: is `leaf` (the leaf's data, hashed here) at `index` of the tree of
    `size` leaves whose root is `root`?"""
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree of `old_size` leaves with `old_root` a prefix of the tree
    of `new_size` leaves with `new_root`?"""
    if not 0 <= old_size <= new_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


def frontier_levels(size: int) -> list[int]:
    """The levels of the complete subtrees a tree of `size` leaves ends in (its compact range,
    biggest first): one per bit set in `size`."""
    return [level for level in reversed(range(size.bit_length())) if size >> level & 1]


def append_leaves(
    size: int, frontier: list[bytes], leaves: list[bytes], keep_from: int
) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Grow a tree of `size` leaves, known by its compact range `frontier`, by `leaves` (their
    data). Returns the new compact range and the complete subtrees (level, index, hash) of
    level `keep_from` and up that the new leaves completed: O(log n) hashing per leaf, no
    rebuild. The root is fold(frontier)."""
    stack = list(zip(frontier_levels(size), frontier, strict=True))
    completed: list[tuple[int, int, bytes]] = []
    for data in leaves:
        stack.append((0, leaf_hash(data)))
        size += 1
        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
            (level, right), (_, left) = stack.pop(), stack.pop()
            stack.append((level + 1, node_hash(left, right)))
            if level + 1 >= keep_from:
                completed.append((level + 1, (size >> (level + 1)) - 1, stack[-1][1]))
    return [h for _, h in stack], completed
