"""core/merkle.py against RFC 9162 itself: its recursive MTH, PATH and PROOF definitions written
out here by brute force, for every tree of 1..64 leaves, every leaf and every older size; and
proofs that were tampered with, or shown for the wrong leaf, size or root, are refused."""

from __future__ import annotations

import hashlib

import pytest

from broadcaster.core import merkle

LEAVES = [hashlib.sha256(str(i).encode()).digest() for i in range(64)]


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(d: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, as written."""
    if not d:
        return h(b"")
    if len(d) == 1:
        return h(b"\x00" + d[0])
    k = 1
    while k * 2 < len(d):
        k *= 2
    return h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1."""
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1."""
    if m == len(d):
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def proof_of(ranges: list[tuple[int, int]], d: list[bytes]) -> list[bytes]:
    """merkle's own proof assembly, with complete subtrees hashed from the leaves."""
    return merkle.proof_from(ranges, lambda level, i: mth(d[i << level : (i + 1) << level]))


def flipped(proof: list[bytes], which: int) -> list[bytes]:
    bad = list(proof)
    bad[which] = bytes([bad[which][0] ^ 1]) + bad[which][1:]
    return bad


@pytest.mark.parametrize("size", range(1, 65))
def test_roots_and_inclusion_proofs_match_the_rfc(size):
    d = LEAVES[:size]
    root = mth(d)
    assert merkle.root_of(d) == root
    for m in range(size):
        proof = proof_of(merkle.inclusion_ranges(m, size), d)
        assert proof == path(m, d)
        assert merkle.verify_inclusion(m, size, d[m], proof, root)
        assert not merkle.verify_inclusion(m, size, LEAVES[size % 64] + b"x", proof, root)
        assert not merkle.verify_inclusion(m, size, d[m], proof, h(root))
        assert not merkle.verify_inclusion(m, size, d[m], [*proof, root], root)
        assert not merkle.verify_inclusion(size, size, d[m], proof, root)
        if size > 1:
            assert not merkle.verify_inclusion((m + 1) % size, size, d[m], proof, root)
            assert not merkle.verify_inclusion(m, size, d[m], proof[:-1], root)
        for i in range(len(proof)):
            assert not merkle.verify_inclusion(m, size, d[m], flipped(proof, i), root)


@pytest.mark.parametrize("new_size", range(1, 65))
def test_consistency_proofs_match_the_rfc(new_size):
    d = LEAVES[:new_size]
    new_root = mth(d)
    assert merkle.verify_consistency(new_size, new_size, new_root, new_root, [])
    assert not merkle.verify_consistency(new_size, new_size, new_root, h(new_root), [])
    assert merkle.verify_consistency(0, new_size, merkle.EMPTY_ROOT, new_root, [])
    for old_size in range(1, new_size):
        old_root = mth(d[:old_size])
        proof = proof_of(merkle.consistency_ranges(old_size, new_size), d)
        assert proof == subproof(old_size, d, True)
        assert merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
        # a rewritten old leaf: neither the old root nor the new one fits any more
        assert not merkle.verify_consistency(old_size, new_size, h(old_root), new_root, proof)
        assert not merkle.verify_consistency(old_size, new_size, old_root, h(new_root), proof)
        assert not merkle.verify_consistency(new_size, old_size, new_root, old_root, proof)
        assert not merkle.verify_consistency(old_size, new_size, old_root, new_root, [])
        assert not merkle.verify_consistency(
            old_size, new_size, old_root, new_root, [*proof, new_root]
        )
        for i in range(len(proof)):
            assert not merkle.verify_consistency(
                old_size, new_size, old_root, new_root, flipped(proof, i)
            )


def test_proof_hashes_of_the_wrong_length_are_refused():
    d = LEAVES[:5]
    proof = path(2, d)
    assert not merkle.verify_inclusion(2, 5, d[2], [*proof[:-1], proof[-1][:31]], mth(d))
    assert not merkle.verify_consistency(2, 5, mth(d[:2]), mth(d), [b"\x00" * 33])
