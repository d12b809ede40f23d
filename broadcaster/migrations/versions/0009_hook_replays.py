"""inbound hook replays and per-account delivery binding (issue 9, item 1)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

`inbound_texts` holds the MessageSid of every inbound text the web hook applied, so a replayed
request is applied once. A held status report now records who signed it (`account_sid`,
`sandbox`), so that it is applied later only to a delivery sent through that account.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_texts",
        sa.Column("message_sid", sa.String(length=64), nullable=False),
        sa.Column("account_sid", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("message_sid"),
    )
    with op.batch_alter_table("held_callbacks") as table:
        table.add_column(sa.Column("account_sid", sa.String(length=64), nullable=True))
        table.add_column(
            sa.Column("sandbox", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("held_callbacks") as table:
        table.drop_column("sandbox")
        table.drop_column("account_sid")
    op.drop_table("inbound_texts")
