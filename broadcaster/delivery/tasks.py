"""Celery tasks: thin. Load, call one service function, enqueue what it says comes next."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from broadcaster.core.config import Settings, load_district
from broadcaster.core.db import session_scope
from broadcaster.core.models import utcnow
from broadcaster.delivery import (
    dispatch,
    expansion,
    heartbeat,
    quiet_release,
    scheduling,
    sending,
)
from broadcaster.delivery.celery_app import DISPATCH_DUE, EXPAND, SEND, SWEEP, app
from broadcaster.delivery.ratelimit import redis_for
from broadcaster.delivery.sweep import sweep as sweep_lost_work
from channel_adapters import adapter_for

log = logging.getLogger(__name__)
_lock = threading.Lock()
_worker: sending.Worker | None = None
_heartbeat: heartbeat.Heartbeat | None = None


def worker() -> sending.Worker:
    global _worker
    with _lock:
        if _worker is None:
            for channel in dispatch.CHANNEL_ORDER:  # load the SDKs before the first alert
                adapter_for(channel)
            settings = Settings()
            _worker = sending.Worker(
                settings=settings,
                district=load_district(settings.config_path),
                redis_client=redis_for(app.conf.broker_url),
                call_threads=app.conf.worker_concurrency or sending.CALL_THREADS,
            )
        return _worker


@worker_ready.connect
def _warm_up(**_: object) -> None:
    """Build the shared state when the worker starts, not inside the first (urgent) task."""
    worker()


@worker_ready.connect
def _report_in(sender: Any, **_: object) -> None:
    """This worker's heartbeat: its queues, its beat and its broker, for doctor and the console."""
    global _heartbeat
    _heartbeat = heartbeat.Heartbeat(
        Settings().effective_database_url,
        queues=sorted(sender.app.amqp.queues.consume_from),
        beat=sender.controller.beat is not None,  # the embedded beat, started by --beat
        broker=heartbeat.broker_identity(app.conf.broker_url),
    )


@worker_shutdown.connect
def _sign_off(**_: object) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


@app.task(name=SEND)
def send_deliveries(ids: list[int]) -> None:
    current = worker()
    sending.send_batch(current, ids)


@app.task(name=EXPAND)
def expand_audience(message_ids: list[int]) -> None:
    """Write these messages' texts, each page enqueued as it commits."""
    current = worker()
    dispatch.enqueue(
        current.settings, expansion.expand(current.settings, current.district, message_ids)
    )


@app.task(name=SWEEP)
def sweep() -> None:
    current = worker()
    dispatch.enqueue(current.settings, sweep_lost_work(current))


@app.task(name=DISPATCH_DUE)
def dispatch_due() -> None:
    """Scheduled messages whose time has come (rows written), and texts and calls whose quiet
    hours have ended: enqueued once committed."""
    current = worker()
    url = current.settings.effective_database_url
    with session_scope(url, settings=current.settings) as session:
        now = utcnow()
        scheduling.dispatch_due(session, current.district, now)
        quiet_release.release_due(session, now)
    warning = dispatch.released(session).warning
    if warning:
        log.warning("scheduled or held messages dispatched, but %s", warning)
