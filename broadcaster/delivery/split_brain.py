"""The refusal to split a deployment's queues between brokers.

The database is the truth and the broker is the doorbell: every process of one deployment must
ring the same one. A host whose BROADCASTER_BROKER_URL is unset would start its own embedded
Redis; with a server database shared by other hosts, the work it enqueues is never seen by their
workers, and theirs never by it. So the worker (and the beat inside it) and the web app refuse to
start on a server database with the embedded broker, or on a broker other than the one the
database's live workers registered (heartbeat.py); `doctor` reports the same.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from broadcaster.core.config import Settings
from broadcaster.core.db import read_scope
from broadcaster.core.errors import Refused
from broadcaster.delivery import embedded_redis, heartbeat

FIX = "set BROADCASTER_BROKER_URL to the broker the other hosts use"


def configured_broker(settings: Settings) -> heartbeat.Broker:
    """The broker this process would use, without starting the embedded one."""
    url = settings.broker_url or embedded_redis.broker_url(settings.home)
    return heartbeat.broker_identity(url)


def is_server_database(url: str) -> bool:
    """A database other hosts can share (PostgreSQL), unlike a SQLite file on this machine."""
    return not url.startswith("sqlite")


def live_brokers(url: str) -> dict[str, str]:
    """Fingerprint -> display of the brokers the database's live workers use. Empty when the
    database cannot tell (not created yet, older schema, not answering: doctor says which)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return {}  # reading would create the file
    try:
        with read_scope(url) as session:
            return {w.broker_fingerprint: w.broker_display for w in heartbeat.live(session)}
    except SQLAlchemyError:
        return {}


def problem(settings: Settings) -> str | None:
    """Why this process would split the deployment's queues, or None."""
    url = settings.effective_database_url
    mine = configured_broker(settings)
    others = sorted(d for f, d in live_brokers(url).items() if f != mine.fingerprint)
    theirs = ", ".join(others) or "redis://HOST:6379/0"
    if not settings.broker_url and is_server_database(url):
        return (
            "the database is a server database shared by other hosts, but BROADCASTER_BROKER_URL "
            f"is unset, so this host would queue work on its own embedded Redis: {FIX}: {theirs}"
        )
    if others:
        return (
            f"this host's broker ({mine.display}) is not the one the deployment's live workers "
            f"use: {FIX}: {theirs}"
        )
    return None


def refuse_split(settings: Settings) -> None:
    """Raise Refused (exit 2) when starting this process would split the queues."""
    found = problem(settings)
    if found:
        raise Refused(f"refusing to start: {found}")
