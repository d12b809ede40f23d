"""corrections and retractions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

A message may follow an earlier one (`follows_id`): an update, or the retraction notice that
takes it down. A delivery either sends or deletes (`action`), and `refers_to` is the provider id
it acts on: the post an update replies to, or the post a retraction deletes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("follows_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("follow_kind", sa.String(length=16), nullable=True))
        batch.create_foreign_key("fk_messages_follows_id", "messages", ["follows_id"], ["id"])
        batch.create_index("ix_messages_follows_id", ["follows_id"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("action", sa.String(length=8), nullable=False, server_default="send")
        )
        batch.add_column(sa.Column("refers_to", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("refers_to")
        batch.drop_column("action")
    with op.batch_alter_table("messages") as batch:
        batch.drop_index("ix_messages_follows_id")
        batch.drop_constraint("fk_messages_follows_id", type_="foreignkey")
        batch.drop_column("follow_kind")
        batch.drop_column("follows_id")
