"""What every web request needs: the settings, the district, the template catalog and a database
transaction, plus how the service errors become HTTP answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy.orm import Session

from broadcaster.authoring.catalog import Catalog
from broadcaster.core import db
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.errors import BroadcasterError, NotFound, Refused
from broadcaster.core.ids import MAX_ID

# A URL segment that is a row id: anything out of range is a 404, like an id that names nothing.
ID = f"int(min=1, max={MAX_ID})"


def settings() -> Settings:
    return current_app.config["BROADCASTER_SETTINGS"]


def district() -> DistrictConfig:
    return current_app.config["BROADCASTER_DISTRICT"]


def catalog() -> Catalog:
    return current_app.config["BROADCASTER_CATALOG"]


@contextmanager
def transaction() -> Iterator[Session]:
    """One transaction, committed when the block ends and rolled back on any error: a refused
    request changes nothing, as on the command line. What it dispatches is enqueued when it
    commits."""
    current = settings()
    with db.session_scope(current.effective_database_url, settings=current) as session:
        yield session


@contextmanager
def reading() -> Iterator[Session]:
    """A read-only transaction, for the public pages and feeds."""
    with db.read_scope(settings().effective_database_url) as session:
        yield session


@contextmanager
def dry_run() -> Iterator[Session]:
    """A transaction that is always rolled back: a preview composes a draft with the same
    functions as a real compose (every check, every count) and leaves nothing behind."""
    session = db.session_factory(settings().effective_database_url)()
    session.begin()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def http_status(error: BroadcasterError) -> int:
    """404 for what does not exist, 403 for what policy refuses, 400 for bad input."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Refused):
        return 403
    return 400
