"""A broker restart never stops a worker or its beat (issue 10, item 7).

Each test runs its own redis-server (append-only, as in production), SIGKILLs it under a real
`broadcaster worker` with its beat and starts it again on the same port. With Celery 5.7.0 /
kombu 5.7.0 and no fix (see broadcaster/delivery/broker_transport.py), a worker that held
unacknowledged tasks while waiting on the broker died with "Unrecoverable error:
AttributeError('NoneType' object has no attribute 'hostname')", its beat with it, and
`broadcaster worker` exited 0.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from broadcaster.delivery.celery_app import SMS, SOCIAL, URGENT, WEB
from tests.conftest import _service_missing, submit_and_approve
from tests.delivery_stack import Stack, import_contacts, texts_by_phone

# The chaos run that found the bug was on PostgreSQL, as production is; one database keeps the
# file short.
DELIVERY_QUEUES = (URGENT, SOCIAL, SMS, WEB)
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)]


@dataclass
class PrivateRedis:
    """A redis-server of this test's own, to kill and start again on the same port."""

    folder: Path
    extra: tuple[str, ...] = ()
    port: int = 0
    proc: subprocess.Popen | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> None:
        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self.starts += 1
        log = open(self.folder / f"redis-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--appendonly", "yes", "--save", "", "--dir", str(self.folder)),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:  # still starting (or loading its append-only file)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """SIGKILL, as when its host or container dies, then start it again."""
        self.kill()
        time.sleep(1)  # down long enough for every worker to notice
        self.start()

    def waiting_consumers(self) -> int:
        """Connections blocked in BRPOP: a worker consuming its queues."""
        return sum(1 for c in self.client().client_list() if c.get("cmd") == "brpop")


def _private_redis(folder: Path, *extra: str) -> PrivateRedis:
    if shutil.which("redis-server") is None:
        _service_missing("redis-server (to restart a broker of the test's own)")
    folder.mkdir()
    server = PrivateRedis(folder, extra)
    server.start()
    return server


@pytest.fixture
def broker(stack: Stack, tmp_path: Path) -> Iterator[PrivateRedis]:
    """The stack's broker is a redis-server of this test's own."""
    server = _private_redis(tmp_path / "redis")
    stack.run.env["BROADCASTER_BROKER_URL"] = server.url
    try:
        yield server
    finally:
        stack.stop()  # before the broker goes: a warm shutdown has something to talk to
        if server.proc and server.proc.poll() is None:
            server.kill()


def wait_consuming(stack: Stack, broker: PrivateRedis, worker: subprocess.Popen) -> None:
    """Until the worker waits on the broker for tasks, or has exited."""
    stack.wait_for(lambda: worker.poll() is not None or broker.waiting_consumers() > 0)
    assert_still_running(stack, worker)


def start_consuming_worker(stack: Stack, broker: PrivateRedis) -> subprocess.Popen:
    worker = stack.start_worker()
    wait_consuming(stack, broker, worker)
    return worker


def children(proc: subprocess.Popen) -> list[int]:
    text = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
    return [int(pid) for pid in text.split()]


def assert_still_running(stack: Stack, worker: subprocess.Popen) -> None:
    logs = "\n".join(p.read_text()[-3000:] for p in stack.tmp_path.glob("worker-*.log"))
    assert worker.poll() is None, f"the worker exited with {worker.returncode}:\n{logs}"
    assert children(worker), f"the worker's beat is gone:\n{logs}"  # the embedded beat process
    assert "Unrecoverable error" not in logs


def assert_texted_once(stack: Stack, view: dict, expected: dict[str, str]) -> None:
    assert view["state"] == "sent", view
    received = texts_by_phone(stack.sandbox)
    assert set(received) == set(expected)
    assert {p: len(t) for p, t in received.items() if len(t) > 1} == {}


def test_an_idle_workers_beat_sends_what_was_approved_while_the_broker_was_down(
    stack, broker, run, tokens, compose_closure, tmp_path
):
    expected = import_contacts(run, tmp_path, 40)
    worker = start_consuming_worker(stack, broker)
    broker.kill()
    draft = compose_closure("--channels", "sms")
    assert run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
    approved = run(
        "approve", str(draft["id"]), "--as", "ben", "--ack-warnings", token=tokens["ben"]
    )
    assert approved.exit_code == 0, approved.output
    assert "the broker did not take the tasks" in approved.stderr  # nothing rang the doorbell
    broker.start()
    wait_consuming(stack, broker, worker)  # it reconnected
    # Only the beat's sweep can enqueue these rows: the broker never heard of them.
    view = stack.wait_done(draft["id"], timeout=90)
    assert_texted_once(stack, view, expected)
    assert_still_running(stack, worker)


def test_a_busy_worker_finishes_the_fan_out_after_a_broker_restart(
    stack, broker, run, tokens, compose_closure, tmp_path
):
    expected = import_contacts(run, tmp_path, 300)  # six SMS batches: fewer than the threads
    stack.sandbox.set_faults([{"provider": "twilio", "fault": "latency", "ms": 40}])
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    worker = start_consuming_worker(stack, broker)
    stack.wait_for(lambda: len(stack.sandbox.posts("twilio")) >= 30)
    broker.restart()  # while the batches run, unacknowledged, and the worker waits for more
    assert len(stack.sandbox.posts("twilio")) < len(expected)  # it was mid fan-out
    wait_consuming(stack, broker, worker)  # it reconnected
    view = stack.wait_done(draft["id"], timeout=90)
    assert_texted_once(stack, view, expected)
    assert_still_running(stack, worker)


def test_a_worker_with_an_empty_queue_delivers_after_a_broker_restart(
    stack, broker, run, tokens, compose_closure, tmp_path
):
    expected = import_contacts(run, tmp_path, 40)
    worker = start_consuming_worker(stack, broker)
    assert [broker.client().llen(queue) for queue in DELIVERY_QUEUES] == [0] * 4  # nothing queued
    broker.restart()
    wait_consuming(stack, broker, worker)  # it reconnected
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    view = stack.wait_done(draft["id"], timeout=90)
    assert_texted_once(stack, view, expected)
    assert_still_running(stack, worker)


def test_a_worker_stopped_by_a_fatal_broker_error_exits_non_zero(stack, run, tmp_path):
    # A broker that cannot serve the worker (here: BRPOP disabled) is not a connection loss to
    # retry: the worker stops, and must say so with its exit status for systemd or compose.
    server = _private_redis(tmp_path / "redis", "--rename-command", "BRPOP", "")
    run.env["BROADCASTER_BROKER_URL"] = server.url
    try:
        worker = stack.start_worker()
        assert worker.wait(timeout=60) == 1
        assert "Unrecoverable error" in (tmp_path / "worker-0.log").read_text()
    finally:
        server.kill()


def test_a_worker_stopped_by_sigterm_exits_zero(stack, broker):
    worker = start_consuming_worker(stack, broker)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
