"""nginx (the Debian package) serving a published folder on loopback with deploy/'s site config,
for the tests and benchmarks/feeds.py. Started in the foreground as a child process of its own,
with every path it writes under a scratch folder."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE_CONF = ROOT / "deploy" / "nginx" / "public-site.conf"


def binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nginx:
    """`with Nginx(root, scratch) as url:` serves `root` at `url` until the block ends."""

    def __init__(self, root: Path, scratch: Path, workers: int = 1):
        self.root, self.scratch, self.workers = root, scratch, workers
        self.proc: subprocess.Popen | None = None

    def _config(self, port: int) -> Path:
        s = self.scratch
        # As root, nginx would run its workers as `nobody`, who cannot enter a test's tmp_path.
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        temp = " ".join(
            f"{kind}_temp_path {s / kind};" for kind in ("client_body", "proxy", "fastcgi")
        )
        text = f"""
{user}
worker_processes {self.workers};
daemon off;
pid {s / "nginx.pid"};
error_log {s / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    {temp}
    uwsgi_temp_path {s / "uwsgi"}; scgi_temp_path {s / "scgi"};
    server {{
        listen 127.0.0.1:{port};
        root {self.root};
        include {SITE_CONF};
    }}
}}
"""
        path = s / "nginx.conf"
        path.write_text(text)
        return path

    def __enter__(self) -> str:
        nginx = binary()
        if nginx is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
        self.scratch.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        conf = self._config(port)
        self.proc = subprocess.Popen(
            [nginx, "-p", str(self.scratch), "-c", str(conf), "-e", str(self.scratch / "err")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.scratch / "error.log").read_text(errors="replace")[-2000:]
                    self.__exit__()
                    raise RuntimeError(f"nginx did not start: {log}") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: nginx's fast shutdown, workers included
            self.proc.wait(timeout=30)
