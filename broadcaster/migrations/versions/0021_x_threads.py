"""X threads: a message's other languages as replies to its X post (issue 14, item 2)

`deliveries.thread_parent`: for a reply in an X thread, the delivery whose tweet it answers; the
reply is not claimed until that one has a provider id (delivery/threads.py). Indexed only where
set: the texts never have one.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

WHERE = sa.text("thread_parent IS NOT NULL")


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("thread_parent", sa.Integer(), nullable=True))
    op.create_index(
        "ix_deliveries_thread_parent",
        "deliveries",
        ["thread_parent"],
        postgresql_where=WHERE,
        sqlite_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_thread_parent", table_name="deliveries")
    op.drop_column("deliveries", "thread_parent")
