"""A real delivery stack for tests: Redis on 127.0.0.1:6379, the provider sandbox on loopback and
`broadcaster worker` processes, all against the test's own database."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.conftest import Cli, _service_missing, submit_and_approve

REDIS_SERVER = os.environ.get("BROADCASTER_TEST_REDIS", "redis://127.0.0.1:6379")
# Parallel test runs on one machine pick different databases (each test FLUSHes its own); so do
# pytest-xdist's workers (gw0, gw1, ...) within one run.
REDIS_DB = int(os.environ.get("BROADCASTER_TEST_REDIS_DB", "11")) + int(
    os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0
)
FAST_SWEEP = {
    "BROADCASTER_SWEEP_EVERY": "1",
    "BROADCASTER_LEASE_SECONDS": "8",
    "BROADCASTER_REQUEUE_AFTER": "4",
    "BROADCASTER_PROVIDER_TIMEOUT_S": "1",
}


def redis_url() -> str:
    url = f"{REDIS_SERVER}/{REDIS_DB}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
    except redis.ConnectionError:
        _service_missing(f"Redis at {REDIS_SERVER}")
    return url


@dataclass
class Stack:
    run: Cli
    sandbox: object
    tmp_path: Path
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, *args: str, concurrency: int = 8) -> subprocess.Popen:
        log = open(self.tmp_path / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "broadcaster",
                "worker",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "warning",
                *args,
            ],
            env={**os.environ, **self.run.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the embedded beat goes with it
        )
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the worker and everything it started, as when its host dies."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def wait_done(self, message_id: int, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            view = self.run.json("status", str(message_id))
            if view["state"] not in ("approved", "dispatching"):
                return view
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-3000:] for p in self.tmp_path.glob("worker-*.log"))
                raise AssertionError(f"message {message_id} still {view}\n{logs}")
            time.sleep(0.25)

    def kill_a_worker_mid_fanout(
        self, tokens: dict[str, str], compose_closure: Callable[..., dict], families: int
    ) -> tuple[dict[str, str], dict]:
        """A text to `families` new families, approved, through a Twilio slowed to 15 ms a
        request: one worker starts the fan-out and is killed once Twilio has 300 texts, holding
        claims. Returns the expected phone -> language and the message's draft."""
        expected = import_contacts(self.run, self.tmp_path, families)
        self.sandbox.set_faults([{"provider": "twilio", "fault": "latency", "ms": 15}])
        draft = compose_closure("--channels", "sms")
        submit_and_approve(self.run, tokens, draft)
        first = self.start_worker(concurrency=4)
        self.wait_for(lambda: len(self.sandbox.posts("twilio")) >= 300)
        self.kill(first)
        return expected, draft

    def wait_for(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("timed out")
            time.sleep(0.05)


@pytest.fixture
def sandbox_options(request) -> dict:
    """Options of the Sandbox a test's stack runs (per-number text and call outcomes, refused
    e-mail recipients, ...): a test gives them with
    `pytest.mark.parametrize("sandbox_options", [...], indirect=True)`."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
def stack(run, tmp_path, sandbox_options):
    from provider_sandbox import Sandbox

    with Sandbox(port=0, **sandbox_options) as sandbox:
        run.env.update(FAST_SWEEP)
        run.env["BROADCASTER_BROKER_URL"] = redis_url()
        run.env["BROADCASTER_SANDBOX_URL"] = sandbox.url
        built = Stack(run, sandbox, tmp_path)
        try:
            yield built
        finally:
            built.stop()


def import_contacts(run, tmp_path: Path, n: int) -> dict[str, str]:
    """n families imported by a new admin, `it`; returns phone -> language."""
    admin = run.json("users", "add", "it")["token"]
    expected = write_contacts(tmp_path / "contacts.csv", n)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    return expected


def write_contacts(path: Path, n: int) -> dict[str, str]:
    """n contact rows: every 10th shares the previous row's phone (siblings), every 25th is
    opted out, every 3rd prefers Spanish. Returns the expected phone -> language."""
    expected: dict[str, str] = {}
    opted_out: set[str] = set()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "language", "schools", "routes", "grades", "opted_out"])
        number = 0
        for i in range(n):
            if i % 10 != 9:
                number += 1
            phone = f"+1415{2000000 + number:07d}"
            language = "es" if number % 3 == 0 else "en"
            out = number % 25 == 0
            writer.writerow([phone, language, "lincoln-hs", "12", "10", "yes" if out else "no"])
            if out:
                opted_out.add(phone)
            expected.setdefault(phone, language)
    return {p: lang for p, lang in expected.items() if p not in opted_out}


def texts_by_phone(sandbox) -> dict[str, list[str]]:
    received: dict[str, list[str]] = {}
    for post in sandbox.posts("twilio"):
        received.setdefault(post["to"], []).append(post["body"])
    return received


def dump(obj: object) -> str:
    return json.dumps(obj, indent=1)[:2000]
