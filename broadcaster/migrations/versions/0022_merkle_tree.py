"""merkle tree over the ledger (issue 16, item 1)

`ledger_tree_nodes` keeps the RFC 9162 tree's complete subtrees of 16 leaves and up (the lower
levels are hashed from the entries when a proof needs them); `ledger_head.tree_frontier` the
tree's compact range, so an append hashes O(log n) without reading the tree (core/ledger_tree.py).
Existing ledgers get their tree here. The nodes are append-only like the entries: triggers
refuse UPDATE and DELETE, on PostgreSQL and SQLite.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from broadcaster.core import merkle

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# Frozen copy of core/ledger_tree.STORED_LEVEL at this revision.
STORED_LEVEL = 4
REFUSAL = "ledger tree nodes are append-only"
_BATCH = 10_000


def upgrade() -> None:
    op.create_table(
        "ledger_tree_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    op.add_column("ledger_head", sa.Column("tree_frontier", sa.LargeBinary(), nullable=True))
    _backfill()
    _protect()


def _backfill() -> None:
    """The tree of the entries already there, streamed in batches."""
    conn = op.get_bind()
    nodes = sa.table("ledger_tree_nodes", sa.column("level"), sa.column("idx"), sa.column("hash"))
    size, frontier = 0, list[bytes]()
    rows = conn.execute(
        sa.text("SELECT entry_hash FROM ledger_entries ORDER BY seq").execution_options(
            yield_per=_BATCH
        )
    )
    for batch in rows.partitions(_BATCH):
        leaves = [bytes.fromhex(h) for (h,) in batch]
        frontier, completed = merkle.append_leaves(size, frontier, leaves, STORED_LEVEL)
        size += len(leaves)
        if completed:
            conn.execute(
                sa.insert(nodes), [{"level": lv, "idx": i, "hash": h} for lv, i, h in completed]
            )
    conn.execute(sa.text("UPDATE ledger_head SET tree_frontier = :f"), {"f": b"".join(frontier)})


def _protect() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION ledger_tree_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSAL}';
            END $$;
            """
        )
        op.execute(
            "CREATE TRIGGER ledger_tree_nodes_append_only BEFORE UPDATE OR DELETE "
            "ON ledger_tree_nodes FOR EACH ROW EXECUTE FUNCTION ledger_tree_append_only()"
        )
        op.execute(
            "CREATE TRIGGER ledger_tree_nodes_no_truncate BEFORE TRUNCATE ON ledger_tree_nodes "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_tree_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ledger_tree_nodes_no_{action.lower()} BEFORE {action} "
                f"ON ledger_tree_nodes BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_tree_append_only() CASCADE")
    with op.batch_alter_table("ledger_head") as batch:
        batch.drop_column("tree_frontier")
    op.drop_table("ledger_tree_nodes")
