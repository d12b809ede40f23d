"""worker heartbeats: which workers run, on which broker (issue 10, item 2)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

Each running worker keeps one row: where it runs, what it consumes, whether it runs the beat, and a
fingerprint of its broker, so that `doctor` and every starting process can see which broker the
deployment's workers use. A row not renewed for a while is a worker that is gone.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("queues", sa.String(200), nullable=False),
        sa.Column("beat", sa.Boolean, nullable=False),
        sa.Column("broker_fingerprint", sa.String(64), nullable=False),
        sa.Column("broker_display", sa.String(500), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
