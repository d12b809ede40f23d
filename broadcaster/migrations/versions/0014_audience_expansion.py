"""audience expansion: texts written by a worker in pages after the approval (issue 12, item 1)

The approval writes and releases a message's web and social deliveries at once and records what
its texts go to: the contact-list version it saw (`contacts_version`), and the expansion's progress
(`expanding`, the cursor `expanded_through`, `expanded_at` for the sweep to notice a stalled one).
Contacts become versioned: an import writes a complete new version (a `contact_lists` row, then
its contacts), the current list is the highest, and an older one stays while a message still
expands from it. The contacts already there are version 1.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    lists = op.create_table(
        "contact_lists",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.bulk_insert(lists, [{"version": 1, "imported_at": dt.datetime.now(dt.UTC)}])
    op.add_column(
        "contacts", sa.Column("version", sa.Integer(), nullable=False, server_default="1")
    )
    # An expansion pages through one version by id.
    op.create_index("ix_contacts_version_id", "contacts", ["version", "id"])
    op.add_column("messages", sa.Column("contacts_version", sa.Integer(), nullable=True))
    op.add_column(
        "messages",
        sa.Column("expanding", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("messages", sa.Column("expanded_through", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("expanded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("expanded_at")
        batch.drop_column("expanded_through")
        batch.drop_column("expanding")
        batch.drop_column("contacts_version")
    op.drop_index("ix_contacts_version_id", table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("version")
    op.drop_table("contact_lists")
