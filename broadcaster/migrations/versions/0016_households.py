"""households: contacts are families with a mobile, a landline and e-mail addresses (issue 13)

A contact row gains the family it belongs to (`household`), a voice-only number (`landline`),
e-mail addresses (`emails`) and the family's channel choices per category (`prefers`); its
mobile (`phone`) becomes optional, since a family may have only a landline or an e-mail. The
rows already there are each their own family (household = the phone) and want every channel.
A delivery records the family it is for (`household`) for the reach report and the fallback
between channels, and its recipient may be an e-mail address (up to 320 characters). A message
whose families may still be due a next channel is `escalating`.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

EVERY_CHANNEL = '["*:sms", "*:voice", "*:email"]'


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("household", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("landline", sa.String(20), nullable=True))
        batch.add_column(sa.Column("emails", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("prefers", sa.JSON(), nullable=False, server_default=EVERY_CHANNEL)
        )
        batch.alter_column("phone", existing_type=sa.String(20), nullable=True)
    op.execute("UPDATE contacts SET household = phone")
    op.create_index("ix_contacts_version_household", "contacts", ["version", "household"])
    op.add_column("deliveries", sa.Column("household", sa.String(64), nullable=True))
    op.add_column(
        "messages",
        sa.Column("escalating", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name == "postgresql":
        # SQLite does not enforce a VARCHAR's length, and recreating `deliveries` there (batch
        # mode) would drop its tally triggers.
        op.alter_column(
            "deliveries", "recipient", existing_type=sa.String(64), type_=sa.String(320)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "deliveries", "recipient", existing_type=sa.String(320), type_=sa.String(64)
        )
    op.drop_column("messages", "escalating")
    op.drop_column("deliveries", "household")
    op.execute("DELETE FROM contacts WHERE phone IS NULL")
    op.drop_index("ix_contacts_version_household", table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.alter_column("phone", existing_type=sa.String(20), nullable=False)
        batch.drop_column("prefers")
        batch.drop_column("emails")
        batch.drop_column("landline")
        batch.drop_column("household")
