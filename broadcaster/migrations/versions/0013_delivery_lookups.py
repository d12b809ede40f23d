"""delivery lookups: per-row lookup backoff for the sweep (issue 10, item 7)

`lookups` counts the provider lookups made to reconcile a delivery; the sweep waits longer
before each next one (the wait is kept in `lease_until`, which already says when the sweep may
look at a `sending` row again).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "deliveries", sa.Column("lookups", sa.Integer(), nullable=False, server_default="0")
    )
    # The sweep takes the oldest lapsed claims first.
    op.create_index("ix_deliveries_status_lease", "deliveries", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_status_lease", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("lookups")
