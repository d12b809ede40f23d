"""records: legal holds and retention destructions

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

`record_holds` keeps what a retention purge must not touch; `record_destructions` says what a purge
destroyed of each message and which ledger entry records it (retention.py, holds.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=64), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.String(length=64), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_record_holds_message_id", "record_holds", ["message_id"])
    op.create_table(
        "record_destructions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("record_seq", sa.Integer(), nullable=False),
        sa.Column("destroyed_by", sa.String(length=64), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "scope"),
    )
    op.create_index("ix_record_destructions_message_id", "record_destructions", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_record_destructions_message_id", table_name="record_destructions")
    op.drop_table("record_destructions")
    op.drop_index("ix_record_holds_message_id", table_name="record_holds")
    op.drop_table("record_holds")
