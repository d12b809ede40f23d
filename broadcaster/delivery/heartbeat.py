"""Worker heartbeats, and the fingerprint of a broker.

Every worker keeps one row in `worker_heartbeats` while it runs: its host and pid, the queues it
consumes, whether it runs the beat, and which broker it uses. A row not renewed within
`gone_after_s()` is a worker that is gone (killed, or its host lost); a worker that stops cleanly
removes its own row. `doctor`, the console and every starting process (split_brain.py) read them.

A broker is identified by its URL without the password. A loopback address or a unix socket
names a different server on every host, so the host's name is part of such a broker's identity:
two hosts that each use their own `redis://localhost` do not share a queue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from broadcaster.core.config import Settings
from broadcaster.core.config_fields import LOOPBACK_HOSTS
from broadcaster.core.db import session_scope
from broadcaster.core.models import WorkerHeartbeat, utcnow

log = logging.getLogger(__name__)

# Rows of workers that died without removing themselves are kept this long for `doctor`'s notes.
FORGET_AFTER = dt.timedelta(days=1)
LOCAL_SCHEMES = ("redis+socket", "unix", "socket")


@dataclass(frozen=True)
class Broker:
    fingerprint: str  # sha256 of the normalized URL, password removed
    display: str  # for people: the URL with its password masked


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + netloc).geturl()


def broker_identity(url: str, hostname: str | None = None) -> Broker:
    """Which broker server this URL reaches, as the same string from every process and host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    display = mask_url(url)
    if scheme in LOCAL_SCHEMES:
        normalized, local = f"{scheme}://{os.path.normpath(parts.path)}", True
    else:
        host = (parts.hostname or "localhost").lower()
        user = f"{parts.username}@" if parts.username else ""
        database = parts.path.strip("/") or "0"
        normalized = f"{scheme}://{user}{host}:{parts.port or 6379}/{database}"
        local = host in LOOPBACK_HOSTS or host.startswith("127.")
    if local:
        where = hostname or socket.gethostname()
        normalized += f" on {where}"
        display += f" on {where}"
    return Broker(hashlib.sha256(normalized.encode()).hexdigest(), display)


def every_s() -> float:
    return Settings().heartbeat_every


def gone_after_s() -> float:
    """Missing four beats in a row is gone, not slow: a busy database may delay one or two."""
    return 4 * every_s()


def live(session: Session, now: dt.datetime | None = None) -> list[WorkerHeartbeat]:
    """The workers that have reported within gone_after_s(), oldest first."""
    horizon = (now or utcnow()) - dt.timedelta(seconds=gone_after_s())
    query = select(WorkerHeartbeat).where(WorkerHeartbeat.last_seen >= horizon)
    return list(session.scalars(query.order_by(WorkerHeartbeat.started_at)))


def register(url: str, queues: list[str], beat: bool, broker: Broker) -> int:
    """This process's row; also forgets rows of workers long gone."""
    now = utcnow()
    with session_scope(url) as session:
        forgotten = WorkerHeartbeat.last_seen < now - FORGET_AFTER
        session.execute(delete(WorkerHeartbeat).where(forgotten))
        row = WorkerHeartbeat(
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=",".join(queues),
            beat=beat,
            broker_fingerprint=broker.fingerprint,
            broker_display=broker.display,
            started_at=now,
            last_seen=now,
        )
        session.add(row)
        session.flush()
        return row.id


def renew(url: str, row_id: int) -> None:
    with session_scope(url) as session:
        session.execute(
            update(WorkerHeartbeat).where(WorkerHeartbeat.id == row_id).values(last_seen=utcnow())
        )


def remove(url: str, row_id: int) -> None:
    with session_scope(url) as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == row_id))


class Heartbeat:
    """A daemon thread that registers this worker and renews its row until stopped."""

    def __init__(self, url: str, queues: list[str], beat: bool, broker: Broker) -> None:
        self.url = url
        self._stopped = threading.Event()
        self._row = register(url, queues, beat, broker)
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        every = every_s()
        while not self._stopped.wait(every):
            try:
                renew(self.url, self._row)
            except SQLAlchemyError as exc:  # the database is away: try again next beat
                log.warning("heartbeat not recorded: %s", type(exc).__name__)

    def stop(self) -> None:
        """A clean stop: the row goes at once, so a restart on another broker is not refused."""
        self._stopped.set()
        self._thread.join()
        try:
            remove(self.url, self._row)
        except SQLAlchemyError as exc:
            log.warning("heartbeat row not removed: %s", type(exc).__name__)
