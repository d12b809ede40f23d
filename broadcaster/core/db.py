"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from broadcaster.core import owner_only
from broadcaster.core.config import Settings
from broadcaster.core.errors import BadInput, BroadcasterError

if TYPE_CHECKING:
    import psycopg

MIGRATIONS = Path(__file__).parent.parent / "migrations"
READ_ONLY = "broadcaster_read_only"
SETTINGS = "broadcaster.settings"  # session.info key: the Settings a session_scope was opened with
_AFTER_COMMIT = "broadcaster.after_commit"  # session.info key: [(savepoint or None, hook)]


@cache
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        _sqlite_setup(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        _postgres_setup(engine)
    return engine


def _postgres_setup(engine: Engine) -> None:
    """Each session tells the server to give up on it when it goes silent (a host whose link was
    cut, a process killed mid-transaction): until then the session's row locks hold up every
    other host. So a deployment needs no postgresql.conf changes for it (any user may set these)."""
    lost_s = Settings().db_lost_client_seconds
    ms = lost_s * 1000
    session_settings = {
        # No transaction of ours waits on the client: one left open that long is abandoned.
        "idle_in_transaction_session_timeout": ms,
        "tcp_user_timeout": ms,  # unacknowledged data to a vanished client
        "tcp_keepalives_idle": max(1, lost_s // 3),  # a vanished idle client
        "tcp_keepalives_interval": max(1, lost_s // 10),
        "tcp_keepalives_count": 3,
    }

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: psycopg.Connection[Any], _record: ConnectionPoolEntry) -> None:
        with dbapi_connection.cursor() as cursor:
            for name, value in session_settings.items():
                cursor.execute("SELECT set_config(%s, %s, false)", (name, str(value)))
        dbapi_connection.commit()


def _sqlite_setup(engine: Engine) -> None:
    """WAL and a busy timeout for concurrent writers; BEGIN IMMEDIATE so that a transaction
    which will write takes the write lock first and never works from a stale read. The file is
    created owner-only (SQLite gives its -wal and -shm files the same mode)."""

    @event.listens_for(engine, "do_connect")
    def _create_owner_only(
        _dialect: Dialect, _record: ConnectionPoolEntry, _args: list[Any], _params: dict[str, Any]
    ) -> None:
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            owner_only.ensure_file(Path(path))

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Readers (public pages, feeds) must not queue behind the workers' write lock.
        reading = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN DEFERRED" if reading else "BEGIN IMMEDIATE")


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> str:
    """Migrate the database to the newest schema; returns the revision it is now at."""
    if url.startswith("sqlite:///"):
        owner_only.ensure_folder(Path(url.removeprefix("sqlite:///")).parent)
    cfg = alembic_config(url)
    with engine_for(url).begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    return head_revision()


def head_revision() -> str:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def current_revision(url: str) -> str | None:
    try:
        with engine_for(url).connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise BroadcasterError(f"cannot reach the database: {exc.orig}") from None


@cache
def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def prepare(url: str, embedded: bool) -> None:
    """The embedded database migrates itself; a server database must be migrated on purpose."""
    if embedded:
        if current_revision_or_none(url) != head_revision():
            upgrade(url)
    elif current_revision(url) != head_revision():
        raise BadInput("the database schema is not current: run `broadcaster db upgrade` first")


def current_revision_or_none(url: str) -> str | None:
    path = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and not Path(path).exists():
        return None
    return current_revision(url)


@contextmanager
def session_scope(url: str, *, settings: Settings | None = None) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any error. `settings`
    rides along in `session.info` for the after-commit work that needs them (the broker)."""
    session = session_factory(url)()
    if settings is not None:
        session.info[SETTINGS] = settings
    try:
        with session.begin():
            yield session
    finally:
        session.close()


@contextmanager
def read_scope(url: str, *, snapshot: bool = False) -> Iterator[Session]:
    """A transaction that only reads: on SQLite it takes no write lock. With `snapshot`, it sees
    one moment of the database throughout, so what commits while it runs (a worker's ledger
    entries, say) stays out of it: PostgreSQL needs REPEATABLE READ for that; a SQLite read
    transaction in WAL mode has it already."""
    engine = engine_for(url).execution_options(**{READ_ONLY: True})
    if snapshot and not url.startswith("sqlite"):
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    session = Session(bind=engine)
    try:
        with session.begin():
            yield session
    finally:
        session.close()


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run `hook` once the session's transaction has committed: never before, and never if the
    transaction, or the savepoint it was registered in, rolls back. Work outside the database
    that must see only committed rows (ringing the broker) goes here, so that no caller can
    forget it or do it too early."""
    hooks = session.info.setdefault(_AFTER_COMMIT, [])
    hooks.append((session.get_nested_transaction(), hook))


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the real commit is still to come
    for _savepoint, hook in session.info.pop(_AFTER_COMMIT, []):
        hook()


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    hooks = session.info.get(_AFTER_COMMIT)
    if not hooks:
        return
    if not previous.nested:
        del session.info[_AFTER_COMMIT]
        return
    session.info[_AFTER_COMMIT] = [(sp, h) for sp, h in hooks if not _within(sp, previous)]


def _within(savepoint: SessionTransaction | None, ended: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is ended:
            return True
        savepoint = savepoint.parent
    return False
