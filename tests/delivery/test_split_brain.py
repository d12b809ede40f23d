"""The worker (and the beat inside it) and the web app refuse to start on a split-brain
configuration, and say how to fix it; a running worker's heartbeat is what they compare with."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from broadcaster.core import db
from broadcaster.core.config import Settings
from broadcaster.core.errors import Refused
from broadcaster.core.models import WorkerHeartbeat
from broadcaster.delivery import embedded_redis, heartbeat
from broadcaster.web import create_app
from tests.conftest import ON_POSTGRESQL
from tests.delivery_stack import REDIS_DB, REDIS_SERVER

SECRET = "n0t-for-the-log"
FIX = "set BROADCASTER_BROKER_URL to the broker the other hosts use"
OTHER_BROKER = f"redis://:{SECRET}@127.0.0.1:6379/{(REDIS_DB + 1) % 16}"


def start(env: dict[str, str], *verb: str) -> subprocess.CompletedProcess:
    """Run a long-running verb that is expected to refuse at once (a timeout fails the test)."""
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", *verb],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def without_broker(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "BROADCASTER_BROKER_URL"}


def heartbeats(url: str) -> list[WorkerHeartbeat]:
    with db.session_scope(url) as session:
        return list(session.scalars(select(WorkerHeartbeat)))


@ON_POSTGRESQL
def test_a_worker_refuses_a_server_database_with_the_embedded_broker(run, tmp_path):
    result = start(without_broker(run.env), "worker", "--loglevel", "warning")
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "BROADCASTER_BROKER_URL is unset" in line and FIX in line
    assert not embedded_redis.socket_path(tmp_path / "home").exists()  # nothing was started


def test_a_worker_refuses_a_broker_other_than_the_live_workers(stack, db_url):
    run = stack.run
    stack.start_worker("--queues", "urgent,sms", "--no-beat")
    stack.wait_for(lambda: heartbeats(db_url))
    [row] = heartbeats(db_url)
    assert (row.queues, row.beat) == ("sms,urgent", False)
    assert row.pid == stack.workers[0].pid  # `python -m broadcaster worker` itself
    assert row.broker_display.startswith(run.env["BROADCASTER_BROKER_URL"])

    result = start({**run.env, "BROADCASTER_BROKER_URL": OTHER_BROKER}, "worker")
    assert result.returncode == 2, result.stderr
    assert SECRET not in result.stderr and ":***@" in result.stderr
    assert f"{FIX}: {run.env['BROADCASTER_BROKER_URL']}" in result.stderr
    assert len(heartbeats(db_url)) == 1  # the refused one never registered

    stack.stop()  # a clean stop removes the worker's row at once
    assert heartbeats(db_url) == []


def test_the_beat_registers_with_its_worker(stack, db_url):
    stack.start_worker()  # --beat is the default
    stack.wait_for(lambda: heartbeats(db_url))
    [row] = heartbeats(db_url)
    assert row.beat and row.queues == "default,sms,social,urgent,web"


@ON_POSTGRESQL
def test_the_web_app_refuses_a_server_database_with_the_embedded_broker(run, monkeypatch):
    for key, value in without_broker(run.env).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BROADCASTER_BROKER_URL", raising=False)
    with pytest.raises(Refused, match=FIX):
        create_app(Settings())
    result = start(without_broker(run.env), "web", "--port", "0")
    assert result.returncode == 2 and FIX in result.stderr


def test_the_web_app_refuses_a_broker_other_than_the_live_workers(run, db_url, monkeypatch):
    live = f"{REDIS_SERVER}/{REDIS_DB}"
    heartbeat.register(db_url, ["default"], True, heartbeat.broker_identity(live))
    for key, value in run.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BROADCASTER_BROKER_URL", OTHER_BROKER)
    with pytest.raises(Refused, match=FIX) as refused:
        create_app(Settings())
    assert SECRET not in str(refused.value) and live in str(refused.value)
    monkeypatch.setenv("BROADCASTER_BROKER_URL", live)
    assert create_app(Settings())  # the workers' broker: it starts


def test_a_loopback_broker_on_another_host_is_another_broker():
    url = "redis://127.0.0.1:6379/0"
    here, there = heartbeat.broker_identity(url, "web-1"), heartbeat.broker_identity(url, "web-2")
    assert here.fingerprint != there.fingerprint
    server = "redis://:pw@redis.internal:6379/0"
    same = heartbeat.broker_identity(server, "web-1"), heartbeat.broker_identity(server, "web-2")
    assert same[0] == same[1] and same[0].display == "redis://:***@redis.internal:6379/0"
    assert heartbeat.broker_identity("redis://redis.internal").fingerprint == (
        heartbeat.broker_identity("redis://:other@REDIS.internal:6379/0").fingerprint
    )


def test_a_starting_worker_and_web_app_warn_what_doctor_finds_and_start(
    stack, db_url, tmp_path, monkeypatch, caplog
):
    from tests.operations.test_doctor import TWILIO_VARIABLE, with_real_sms

    run = stack.run
    run.env["BROADCASTER_CONFIG"] = str(with_real_sms(tmp_path))
    stack.start_worker("--no-beat")
    stack.wait_for(lambda: heartbeats(db_url))  # it started all the same
    warning = f"warning: doctor: credentials: unset: account district-sms: {TWILIO_VARIABLE}"
    assert warning in (tmp_path / "worker-0.log").read_text()

    for key, value in run.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(TWILIO_VARIABLE, raising=False)
    assert create_app(Settings())
    assert warning.removeprefix("warning: ") in caplog.text
