"""web login: passwords and token lookup

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

`password_hash` (argon2) is the console login; `token_lookup` (SHA-256 of the personal token) lets
an API request find its user from the token alone, before the argon2 check.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("token_lookup", sa.String(length=64), nullable=True))
        batch.create_index("ix_users_token_lookup", ["token_lookup"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_token_lookup")
        batch.drop_column("token_lookup")
        batch.drop_column("password_hash")
