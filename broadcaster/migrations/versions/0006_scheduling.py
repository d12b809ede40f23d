"""scheduled messages

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

`messages.send_at`: an approved message with a future send_at waits in `scheduled` until the
periodic task dispatches it (scheduling.py); the time lives in the database, not in a broker ETA.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "send_at")
