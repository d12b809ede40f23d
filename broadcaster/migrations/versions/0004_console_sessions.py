"""console sessions and login throttling

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

`users.session_version` is carried by every console session; raising it (sign-out, a new
password) ends them. `login_failures` holds recent failed sign-ins so the throttle holds across
all web workers.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_version", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_login_failures_name_at", "login_failures", ["user_name", "created_at"], unique=False
    )
    op.create_index(
        "ix_login_failures_address_at", "login_failures", ["address", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_login_failures_address_at", table_name="login_failures")
    op.drop_index("ix_login_failures_name_at", table_name="login_failures")
    op.drop_table("login_failures")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
