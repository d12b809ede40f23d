"""One writer of outcomes per worker process.

Every outcome is written with its ledger entry, and the ledger is one hash chain: each write
takes its lock until it commits. When every batch wrote its own outcomes, 64 sending threads
queued behind that lock more than they sent (profiling 100,000 texts: the lock wait was the
largest single cost, and the call threads stood idle for most of the run). Here a process's
outcomes go to one thread, which writes whatever has come in since its last write as one group
(one lock, one UPDATE, one append): under load the groups grow, and a lone outcome is written as
soon as it arrives. Retries are enqueued by it after the commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from broadcaster.delivery.dispatch import enqueue
from broadcaster.delivery.jobs import Result
from broadcaster.delivery.recording import record

if TYPE_CHECKING:
    from broadcaster.delivery.sending import Worker

log = logging.getLogger(__name__)
MAX_GROUP = 500  # outcomes written in one transaction at most


class Recorder:
    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._queue: queue.SimpleQueue[tuple[Result, Future[None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def put(self, result: Result) -> Future[None]:
        """Have the outcome written; the future is done once it is committed (or failed)."""
        written: Future[None] = Future()
        self._queue.put((result, written))
        with self._start:
            if self._thread is None:
                # A daemon: what it has not written when the process ends stays claimed, and
                # the sweep looks it up, as for a worker that died.
                self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
                self._thread.start()
        return written

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(group)

    def _write(self, group: list[tuple[Result, Future[None]]]) -> None:
        try:
            retries = record(self._worker, [result for result, _ in group])
        except Exception as exc:  # the rows stay claimed: the sweep settles them
            log.exception("could not record %d outcomes", len(group))
            for _, written in group:
                written.set_exception(exc)
            return
        for _, written in group:
            written.set_result(None)
        try:
            enqueue(self._worker.settings, retries)
        except Exception:  # recorded as queued: the sweep enqueues them again
            log.warning("could not enqueue %d retries; the sweep will", len(retries))
