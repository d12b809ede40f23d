"""held delivery reports

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

A Twilio status callback can arrive before the worker records the message's SID; it is held in
`held_callbacks` and applied once the SID is recorded (provider_callbacks.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_held_callbacks_provider_id", "held_callbacks", ["provider_id"])


def downgrade() -> None:
    op.drop_index("ix_held_callbacks_provider_id", table_name="held_callbacks")
    op.drop_table("held_callbacks")
