"""shared deliveries: a number or address two families share is sent to once, for both

A message texts, calls or e-mails each number or address once, and its delivery row names the
first family that gave it. Another family of the audience with the same number or address (a
grandparent's phone on two households' rows) is reached, or not, by that same delivery: a row
here says so, so the reach report lists that family too and the fallback gives it its next
channel when the shared delivery did not reach it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_deliveries",
        sa.Column("delivery_id", sa.Integer(), sa.ForeignKey("deliveries.id"), primary_key=True),
        sa.Column("household", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.Integer(), nullable=False),
    )
    op.create_index("ix_shared_deliveries_message_id", "shared_deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_shared_deliveries_message_id", table_name="shared_deliveries")
    op.drop_table("shared_deliveries")
