"""approval by text reply: approvers' verified phones and the codes texted to them (issue 14)

`approver_phones`: one phone per user (and one user per phone), trusted once the code texted to
it came back; its pending verification code (argon2), and the wrong approval replies that turn
text approval off until an admin turns it back on. `approval_codes`: a code texted to one
approver for one message (argon2), its end and when it was used.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approver_phones",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_hash", sa.String(length=200), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_tries", sa.Integer(), server_default="0", nullable=False),
        sa.Column("wrong_replies", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id"),
        sa.UniqueConstraint("phone", name="uq_approver_phones_phone"),
    )
    op.create_table(
        "approval_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approval_codes_message_id", "approval_codes", ["message_id"])
    op.create_index("ix_approval_codes_user_id", "approval_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_approval_codes_user_id", table_name="approval_codes")
    op.drop_index("ix_approval_codes_message_id", table_name="approval_codes")
    op.drop_table("approval_codes")
    op.drop_table("approver_phones")
