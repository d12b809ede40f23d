"""bearer tokens: public lookup part, disabled users (issue 9, item 5)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

`users.disabled_at` marks a user an admin disabled. New tokens are `bc_<lookup>_<secret>`: the
lookup part goes in the existing unique `users.token_lookup` column and the argon2 hash of the
secret in `token_hash`. Tokens issued before this migration keep working, found by the SHA-256
that 0003 stored in the same column, until `broadcaster users token` replaces them: invalidating
them all would also invalidate every admin's token, and with it the only way (`--as ADMIN`) to
issue new ones.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
