"""quiet hours: a routine message's texts and calls held until the night is over (issue 14)

`quiet_until`: when the texts and calls of a message that went out in the district's quiet
hours may go (None: not held, or released); `quiet_override`: the reason an approver gave to
send them at once.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("quiet_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("messages", sa.Column("quiet_override", sa.String(300), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "quiet_override")
    op.drop_column("messages", "quiet_until")
