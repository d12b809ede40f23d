"""delivery tallies: a message's delivery counts kept as they change (issue 12, item 2)

Status pages, the console's dashboard, the metrics and the finishing check counted a message's
deliveries by grouping its rows: a million rows read for every refresh of a large message.
`delivery_tallies` holds signed changes (+1, -1) per message, channel, action and status; a
count is the sum of a message's few rows, and the sweep folds them into one row per key
(delivery/tallies.py).

The database writes them, so no writer of deliveries can forget: on PostgreSQL a trigger per
statement that inserts, updates or deletes deliveries appends that statement's net changes (from
its transition tables); on SQLite a trigger per row appends the row's. Appending, never updating
a shared counter row, means two transactions never wait on each other's tallies, and cannot
deadlock over them. The rows already there are tallied in the same transaction as the triggers
are created.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

POSTGRESQL = [
    """
    CREATE FUNCTION delivery_tally_changes() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO delivery_tallies (message_id, channel, action, status, n)
            SELECT message_id, channel, action, status, count(*) FROM new_rows
            GROUP BY message_id, channel, action, status;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO delivery_tallies (message_id, channel, action, status, n)
            SELECT message_id, channel, action, status, -count(*) FROM old_rows
            GROUP BY message_id, channel, action, status;
        ELSE
            INSERT INTO delivery_tallies (message_id, channel, action, status, n)
            SELECT message_id, channel, action, status, sum(n) FROM (
                SELECT message_id, channel, action, status, 1 AS n FROM new_rows
                UNION ALL
                SELECT message_id, channel, action, status, -1 AS n FROM old_rows
            ) AS moves
            GROUP BY message_id, channel, action, status
            HAVING sum(n) <> 0;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    # A trigger with transition tables takes one event.
    """
    CREATE TRIGGER deliveries_tally_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_tally_changes()
    """,
    """
    CREATE TRIGGER deliveries_tally_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_tally_changes()
    """,
    """
    CREATE TRIGGER deliveries_tally_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_tally_changes()
    """,
]

SQLITE = [
    """
    CREATE TRIGGER deliveries_tally_insert AFTER INSERT ON deliveries BEGIN
        INSERT INTO delivery_tallies (message_id, channel, action, status, n)
        VALUES (NEW.message_id, NEW.channel, NEW.action, NEW.status, 1);
    END
    """,
    """
    CREATE TRIGGER deliveries_tally_update AFTER UPDATE OF message_id, channel, action, status
    ON deliveries
    WHEN OLD.status IS NOT NEW.status OR OLD.message_id IS NOT NEW.message_id
        OR OLD.channel IS NOT NEW.channel OR OLD.action IS NOT NEW.action
    BEGIN
        INSERT INTO delivery_tallies (message_id, channel, action, status, n) VALUES
            (OLD.message_id, OLD.channel, OLD.action, OLD.status, -1),
            (NEW.message_id, NEW.channel, NEW.action, NEW.status, 1);
    END
    """,
    """
    CREATE TRIGGER deliveries_tally_delete AFTER DELETE ON deliveries BEGIN
        INSERT INTO delivery_tallies (message_id, channel, action, status, n)
        VALUES (OLD.message_id, OLD.channel, OLD.action, OLD.status, -1);
    END
    """,
]


def upgrade() -> None:
    op.create_table(
        "delivery_tallies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_tallies_message_id", "delivery_tallies", ["message_id"])
    for statement in POSTGRESQL if _postgresql() else SQLITE:
        op.execute(statement)
    op.execute(
        "INSERT INTO delivery_tallies (message_id, channel, action, status, n) "
        "SELECT message_id, channel, action, status, count(*) FROM deliveries "
        "GROUP BY message_id, channel, action, status"
    )


def downgrade() -> None:
    on_table = " ON deliveries" if _postgresql() else ""  # SQLite's triggers are named alone
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER deliveries_tally_{event}{on_table}")
    if _postgresql():
        op.execute("DROP FUNCTION delivery_tally_changes()")
    op.drop_index("ix_delivery_tallies_message_id", table_name="delivery_tallies")
    op.drop_table("delivery_tallies")


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"
