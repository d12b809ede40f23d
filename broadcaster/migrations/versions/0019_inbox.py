"""the two-way inbox: a family's reply that is not a keyword is kept (issue 14, item 4)

`inbound_texts` already holds every inbound text's MessageSid (replays are applied once). A kept
text adds, on the same row: the district account it came to, the sender's number, the family of
that number (`household`), the message it answers (the last text sent to that number before it
came; none if none), its body (checked, capped: `truncated` says it was cut) and when it was
forwarded to the staff room. A keyword (STOP, START, HELP) keeps none of these: `body` is NULL.
`deliveries` gains an index on (recipient, sent_at): the last text sent to the sender's number.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_texts") as batch:
        batch.add_column(sa.Column("account", sa.String(64), nullable=True))
        batch.add_column(sa.Column("phone", sa.String(20), nullable=True))
        batch.add_column(sa.Column("household", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column(
                "message_id",
                sa.Integer(),
                sa.ForeignKey("messages.id", name="fk_inbound_texts_message_id"),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("forwarded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_inbound_texts_received_at", "inbound_texts", ["received_at"])
    op.create_index("ix_inbound_texts_message_id", "inbound_texts", ["message_id"])
    op.create_index("ix_deliveries_recipient_sent", "deliveries", ["recipient", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_recipient_sent", table_name="deliveries")
    op.drop_index("ix_inbound_texts_message_id", table_name="inbound_texts")
    op.drop_index("ix_inbound_texts_received_at", table_name="inbound_texts")
    with op.batch_alter_table("inbound_texts") as batch:
        batch.drop_column("forwarded_at")
        batch.drop_column("truncated")
        batch.drop_column("body")
        batch.drop_column("message_id")
        batch.drop_column("household")
        batch.drop_column("phone")
        batch.drop_column("account")
