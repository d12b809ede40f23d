"""The ledger's stored Merkle tree (core/ledger_tree.py) on SQLite and PostgreSQL: grown by the
ledger's own appends (single and batched), its roots and proofs are RFC 9162's for the entries'
hashes; an existing ledger gets its tree from migration 0022; stored nodes refuse UPDATE/DELETE."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from broadcaster.core import db, ledger, ledger_tree, merkle
from broadcaster.core.models import LedgerEntry, LedgerHead, LedgerTreeNode

# Batches of several sizes, so blocks of 16 are completed inside a batch and across batches.
BATCHES = [1, 1, 3, 17, 1, 9, 2, 16, 5, 1]
SIZE = sum(BATCHES)  # 56: stored nodes at levels 4 and 5


def fill(session_factory, batches=BATCHES) -> list[bytes]:
    for n in batches:
        with session_factory() as session:
            ledger.append_many(session, [ledger.Entry("test.tree", {"i": i}) for i in range(n)])
    with session_factory() as session:
        hashes = session.scalars(select(LedgerEntry.entry_hash).order_by(LedgerEntry.seq))
        return [bytes.fromhex(h) for h in hashes]


def test_roots_and_proofs_are_those_of_the_entries(session_factory):
    leaves = fill(session_factory)
    assert len(leaves) == SIZE
    with session_factory() as session:
        assert ledger_tree.tree_size(session) == SIZE
        assert ledger_tree.root(session) == (SIZE, merkle.root_of(leaves))
        rebuilt = ledger_tree.recompute(session)
        assert (rebuilt.size, rebuilt.root) == (SIZE, merkle.root_of(leaves))
        levels = set(session.scalars(select(LedgerTreeNode.level)))
        assert levels == {4, 5}
        roots = {n: ledger_tree.root_at(session, n) for n in range(1, SIZE + 1)}
        assert roots == {n: merkle.root_of(leaves[:n]) for n in range(1, SIZE + 1)}
        for size in (SIZE, 37, 16, 1):
            every = ledger_tree.inclusion_proofs(session, list(range(1, size + 1)), size)
            for seq in range(1, size + 1):
                proof = ledger_tree.inclusion_proof(session, seq, size)
                assert every[seq] == proof
                assert merkle.verify_inclusion(seq - 1, size, leaves[seq - 1], proof, roots[size])
        for new in (SIZE, 33):
            for old in range(1, new + 1):
                proof = ledger_tree.consistency_proof(session, old, new)
                assert merkle.verify_consistency(old, new, roots[old], roots[new], proof)
        for bad in (
            lambda: ledger_tree.root_at(session, SIZE + 1),
            lambda: ledger_tree.root_at(session, 0),
            lambda: ledger_tree.inclusion_proof(session, 0, SIZE),
            lambda: ledger_tree.inclusion_proof(session, 9, 8),
            lambda: ledger_tree.consistency_proof(session, 9, 8),
            lambda: ledger_tree.consistency_proof(session, 1, SIZE + 1),
        ):
            with pytest.raises(ledger_tree.TreeError):
                bad()


def test_a_ledger_from_before_the_tree_gets_it_when_migrated(db_url, session_factory):
    """Migrate down to 0021, append entries there (the chain only), migrate up again."""
    cfg = db.alembic_config(db_url)
    with db.engine_for(db_url).begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0021")
    with db.engine_for(db_url).begin() as connection:
        prev = ledger.GENESIS
        for seq in range(1, 41):
            entry_hash = ledger.link_hash(seq, "t", "old", None, None, "0" * 64, prev)
            connection.execute(
                text("INSERT INTO ledger_entries VALUES (:s, 't', 'old', NULL, NULL, :p, :v, :h)"),
                {"s": seq, "p": "0" * 64, "v": prev, "h": entry_hash},
            )
            prev = entry_hash
        connection.execute(text("INSERT INTO ledger_head VALUES (1, 40, :h)"), {"h": prev})
    db.upgrade(db_url)
    leaves = fill(session_factory, [3])
    with session_factory() as session:
        assert ledger_tree.root(session) == (43, merkle.root_of(leaves))
        assert ledger_tree.root_at(session, 40) == merkle.root_of(leaves[:40])
        assert ledger_tree.recompute(session).bad_seq is None


def test_stored_nodes_refuse_update_and_delete(session_factory):
    fill(session_factory, [20])
    for statement in (
        "UPDATE ledger_tree_nodes SET hash = hash",
        "DELETE FROM ledger_tree_nodes",
    ):
        with pytest.raises(DBAPIError, match="append-only"), session_factory() as session:
            session.execute(text(statement))
    with session_factory() as session:
        assert session.get(LedgerHead, 1).seq == 20
        assert session.scalar(select(LedgerTreeNode.hash)) is not None


def test_appends_go_on_when_the_heads_copy_of_the_tree_edge_is_lost(session_factory):
    """An insider (or a bad restore) nulls the head's compact range: the next append takes it
    from the stored nodes and entries, and the tree is as the entries make it."""
    fill(session_factory, [37])
    with session_factory() as session:
        session.execute(text("UPDATE ledger_head SET tree_frontier = NULL"))
    with session_factory() as session:
        assert ledger_tree.root(session)[0] == 37  # from the nodes and entries meanwhile
    leaves = fill(session_factory, [2, 1])
    with session_factory() as session:
        assert ledger_tree.root(session) == (40, merkle.root_of(leaves))
        assert ledger_tree.root_at(session, 39) == merkle.root_of(leaves[:39])
        assert ledger_tree.recompute(session).bad_seq is None
