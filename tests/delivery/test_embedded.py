"""The single-machine path: the embedded Redis-protocol server (Valkey) is current, private to
its owner, shared per home, outlives the process that started it and keeps queued work across
its own restart; and `broadcaster demo` runs from nothing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from broadcaster.delivery import embedded_redis
from tests.delivery_stack import FAST_SWEEP

# Started in a child that exits once it has the server: a CLI process, as far as the server knows.
START = """
import os, sys, time
from pathlib import Path
from broadcaster.delivery import embedded_redis
os.umask(int(sys.argv[2], 8))
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # many starters at the same instant
embedded_redis.ensure_running(Path(sys.argv[1]))
"""


def start_in_child(home: Path, umask: int = 0o022, at: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", START, str(home), oct(umask), str(at)])


def client(home: Path) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(embedded_redis.socket_path(home)))


def servers_in(folder: Path) -> list[int]:
    """The pids of processes working in this folder (a server chdirs to its data folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cwd").resolve() == folder.resolve():
                found.append(int(proc.name))
        except OSError:  # gone, or not ours to look at
            continue
    return found


@pytest.fixture
def home(tmp_path) -> Iterator[Path]:
    home = tmp_path / "home"
    yield home
    embedded_redis.stop(home)
    for pid in servers_in(embedded_redis.socket_path(home).parent):  # any second server
        os.kill(pid, 9)


def test_the_embedded_server_is_a_current_valkey(home):
    embedded_redis.ensure_running(home)
    info = client(home).info("server")
    assert info["server_name"] == "valkey"
    assert int(str(info["valkey_version"]).split(".")[0]) >= 8


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_only_its_owner_can_reach_the_server_or_read_its_files(home, umask):
    assert start_in_child(home, umask).wait(timeout=30) == 0
    db = client(home)
    db.rpush("celery", "queued work")
    assert db.config_get("port")["port"] == "0"  # a unix socket only, nothing on TCP
    folder = embedded_redis.socket_path(home).parent
    time.sleep(1.2)  # appendfsync everysec: the append-only file is on disk
    assert any(folder.rglob("*.aof")), "the server keeps an append-only file"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in [*folder.rglob("*"), embedded_redis.socket_path(home)]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is open to others"


def test_it_outlives_the_process_that_started_it_and_is_shared_by_the_next(home):
    assert start_in_child(home).wait(timeout=30) == 0
    assert embedded_redis.is_running(home)
    first = client(home).info("server")["process_id"]
    assert start_in_child(home).wait(timeout=30) == 0
    assert client(home).info("server")["process_id"] == first
    assert servers_in(embedded_redis.socket_path(home).parent) == [first]


def test_processes_starting_it_at_the_same_instant_share_one_server(home):
    at = time.time() + 3  # after every child has imported the project
    starters = [start_in_child(home, at=at) for _ in range(6)]
    assert [proc.wait(timeout=60) for proc in starters] == [0] * 6
    pids = servers_in(embedded_redis.socket_path(home).parent)
    assert pids == [client(home).info("server")["process_id"]]


def test_what_it_holds_survives_stop_and_start(home):
    embedded_redis.ensure_running(home)
    client(home).rpush("celery", "one", "two")
    client(home).set("ratelimit", "7")
    embedded_redis.stop(home)
    assert not embedded_redis.is_running(home)
    embedded_redis.ensure_running(home)
    assert client(home).lrange("celery", 0, -1) == [b"one", b"two"]
    assert client(home).get("ratelimit") == b"7"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no older server to replace")
def test_an_older_server_left_running_is_replaced_and_its_queue_kept(home):
    folder = embedded_redis.socket_path(home).parent
    folder.mkdir(parents=True)
    subprocess.run(  # as a broadcaster before this change started it, with the Redis it had
        [
            *("redis-server", "--daemonize", "yes", "--port", "0", "--dir", str(folder)),
            *("--unixsocket", str(embedded_redis.socket_path(home)), "--appendonly", "yes"),
        ],
        check=True,
    )
    for _ in range(100):
        if embedded_redis.is_running(home):
            break
        time.sleep(0.05)
    client(home).rpush("celery", "approved before the upgrade")
    embedded_redis.ensure_running(home)
    assert client(home).info("server")["server_name"] == "valkey"
    assert client(home).lrange("celery", 0, -1) == [b"approved before the upgrade"]
    assert servers_in(folder) == [client(home).info("server")["process_id"]]
    for path in folder.rglob("*"):  # what the older server wrote under a 022 umask too
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is open to others"


def test_the_broker_url_it_gives_carries_messages(home):
    with Connection(embedded_redis.ensure_running(home)) as broker:
        queue = broker.SimpleQueue("embedded-check")
        queue.put({"message": 1})
        received = queue.get(timeout=5)
        received.ack()
        assert received.payload == {"message": 1}
        queue.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the embedded broker's database
def test_work_queued_on_the_embedded_redis_survives_its_restart(
    run, tokens, compose_closure, tmp_path
):
    from provider_sandbox import Sandbox

    home = tmp_path / "home"
    with Sandbox(port=0) as sandbox:
        run.env.update(FAST_SWEEP)
        run.env["BROADCASTER_SANDBOX_URL"] = sandbox.url
        draft = compose_closure("--channels", "x,facebook,web", audience=None)
        run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
        assert run("approve", str(draft["id"]), "--as", "ben", token=tokens["ben"]).exit_code == 0
        assert embedded_redis.is_running(home)  # the approving process started it
        embedded_redis.stop(home)  # as if the machine restarted before any worker ran
        assert not embedded_redis.is_running(home)
        worker = subprocess.Popen(
            [sys.executable, "-m", "broadcaster", "worker", "--no-beat", "--loglevel", "warning"],
            env={**os.environ, **run.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            view = run.json("status", str(draft["id"]), "--follow", "--timeout", "60")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        assert view["state"] == "sent"  # delivered from the queue restored from disk
        assert len(sandbox.posts("x")) == 2 and len(sandbox.posts("facebook")) == 1


def test_the_demo_runs_on_a_fresh_install(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "broadcaster", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "records verify: intact" in result.stdout
    assert "is sent" in result.stdout
    assert "twilio calls" in result.stdout and "Riverside Unified School District" in result.stdout
    assert "e-mail (SMTP)" in result.stdout and "staff chat (Apprise)" in result.stdout
    # The project's own lines only: no Celery banner (that is `demo --verbose`), and Celery's
    # ten-line warning about root said once in one line of ours.
    said = result.stdout + result.stderr
    assert "[queues]" not in said and "celery@" not in said and "Warm shutdown" not in said
    assert "superuser privileges" not in said
    assert result.stderr.count("runs as root, which is not recommended") == (os.geteuid() == 0)
