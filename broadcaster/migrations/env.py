"""Alembic environment: runs on the connection that broadcaster.db.upgrade hands it."""

from alembic import context
from sqlalchemy import create_engine

from broadcaster.core.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    # Plain `alembic` command line (maintainers writing a new revision).
    engine = create_engine(config.get_main_option("sqlalchemy.url"))  # type: ignore[arg-type]  # set by alembic.ini
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run()
