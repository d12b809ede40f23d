"""Public pages benchmark: requests per second for `/feeds/alerts.atom` and `/` under concurrent
readers, served by the web app under werkzeug's threaded server in a process of its own, with the
page cache on and, in the same run against the same database, with it off (every request renders
the page: the baseline); then the same URLs as the published static files (web/publish.py)
behind nginx (the Debian package, started here on loopback with deploy/nginx/public-site.conf).
Each server gets a row for revalidation too (If-None-Match → 304).

    python benchmarks/feeds.py --alerts 20 --clients 16 --seconds 5

The readers are raw keep-alive HTTP/1.1 connections spread over one process per core, so the
client is not what is measured (requests' per-call cost caps a Python client near 1,500/s).

Uses PostgreSQL on 127.0.0.1:5432 when it answers (a scratch database it drops afterwards), else
(or with --sqlite) SQLite. The alerts are composed with the real CLI and posted by the real web
adapter. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUTES = ("/feeds/alerts.atom", "/")
PG_ADMIN = "postgresql://root@127.0.0.1:5432/postgres"
REASONS = ("a power outage", "a water main break", "a winter storm", "a gas leak", "flooding")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=20, help="active alerts to seed")
    parser.add_argument("--clients", type=int, default=16, help="concurrent readers")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--sqlite", action="store_true", help="SQLite even if PostgreSQL answers")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(cache=not args.no_cache)
        return

    home = Path(tempfile.mkdtemp(prefix="broadcaster-bench-feeds-"))
    url, pg_name = scratch_database(home, args.sqlite)
    env = {
        **os.environ,
        "BROADCASTER_HOME": str(home),
        "BROADCASTER_DATABASE_URL": url,
        "BROADCASTER_TOKEN": "",
    }
    env.pop("BROADCASTER_PUBLIC_URL", None)
    if pg_name:  # a server database wants a server broker (split_brain.py); nothing is queued
        env.setdefault("BROADCASTER_BROKER_URL", "redis://127.0.0.1:6379/0")
    try:
        seed(env, url, args.alerts)
        rows = {}
        for cache in (True, False):
            with server(env, cache) as base:
                for route in ROUTES:
                    rows[(route, cache)] = load(base + route, args.clients, args.seconds)
                    if cache:
                        rows[(route, "304")] = load(
                            base + route, args.clients, args.seconds, revalidate=True
                        )
        site = published(env, home)
        with site as base:
            for route in ROUTES:
                rows[(route, "nginx")] = load(base + route, args.clients, args.seconds)
                rows[(route, "nginx 304")] = load(
                    base + route, args.clients, args.seconds, revalidate=True
                )
    finally:
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')

    print(
        f"{args.alerts} active alerts, {args.clients} concurrent clients, {args.seconds:g} s "
        f"each, database {'PostgreSQL' if pg_name else 'SQLite'}, werkzeug threaded server; "
        f"nginx with {os.cpu_count()} workers; {os.cpu_count()} cores"
    )
    print(f"publishing wrote {site.files} files in {site.seconds:.2f} s")
    print(f"{'route':<22}{'mode':<40}{'req/s':>10}{'ratio':>10}{'vs cache':>10}")
    result: dict[str, object] = {
        "alerts": args.alerts,
        "clients": args.clients,
        "publish_files": site.files,
        "publish_s": round(site.seconds, 2),
    }
    for route in ROUTES:
        baseline, cached = rows[(route, False)], rows[(route, True)]
        for key, mode in (
            (False, "render every time (baseline)"),
            (True, "page cache"),
            ("304", "page cache, If-None-Match (304)"),
            ("nginx", "published files, nginx"),
            ("nginx 304", "published files, nginx, If-None-Match"),
        ):
            rate = rows[(route, key)]
            print(
                f"{route:<22}{mode:<40}{rate:>10.1f}{rate / baseline:>10.2f}{rate / cached:>10.2f}"
            )
        name = "atom" if route.endswith("atom") else "index"
        result[f"{name}_uncached_rps"] = round(baseline, 1)
        result[f"{name}_cached_rps"] = round(cached, 1)
        result[f"{name}_304_rps"] = round(rows[(route, "304")], 1)
        result[f"{name}_ratio"] = round(cached / baseline, 2)
        result[f"{name}_nginx_rps"] = round(rows[(route, "nginx")], 1)
        result[f"{name}_nginx_304_rps"] = round(rows[(route, "nginx 304")], 1)
        result[f"{name}_nginx_vs_cache"] = round(rows[(route, "nginx")] / cached, 2)
    print(json.dumps(result))


def scratch_database(home: Path, sqlite: bool) -> tuple[str, str | None]:
    sqlite_url = f"sqlite:///{home / 'bench.db'}"
    if sqlite:
        return sqlite_url, None
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError:
        return sqlite_url, None
    name = f"bc_bench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://root@127.0.0.1:5432/{name}", name


def seed(env: dict[str, str], url: str, n: int) -> None:
    """n bilingual closures: composed by the CLI, posted by the web adapter, linked by a sent
    delivery as a worker records it."""
    from click.testing import CliRunner

    from broadcaster.cli.main import cli
    from broadcaster.core import db
    from broadcaster.core.config import Settings, load_district
    from broadcaster.core.models import Delivery, Message, utcnow
    from broadcaster.delivery.accounts import account_config
    from broadcaster.delivery.dispatch import MULTILINGUAL
    from broadcaster.delivery.jobs import text_for
    from channel_adapters.web import WebAdapter

    db.upgrade(url)
    runner = CliRunner()

    def run(*argv: str, token: str = "") -> dict:
        done = runner.invoke(cli, [*argv, "--json"], env={**env, "BROADCASTER_TOKEN": token})
        if done.exit_code != 0:
            raise SystemExit(f"broadcaster {' '.join(argv)}: {done.output}")
        return json.loads(done.stdout)

    token = run("users", "add", "ana")["token"]
    settings = Settings(home=Path(env["BROADCASTER_HOME"]), database_url=url)
    district = load_district(settings.config_path)
    adapter = WebAdapter(account_config(settings, district, "district-web", "actual"))
    for i in range(n):
        reason = REASONS[i % len(REASONS)]
        draft = run(
            "compose",
            "school_closure",
            "--as",
            "ana",
            "--channels",
            "web",
            "--var",
            "schools=all",
            "--var",
            f"date=2026-03-{1 + i % 28:02d}",
            "--var",
            f"reason={reason}",
            "--var",
            f"reason.es={reason}",
            token=token,
        )
        with db.session_scope(url) as session:
            text = text_for(session.get(Message, draft["id"]), "web", MULTILINGUAL)
        receipt = adapter.send(text)
        with db.session_scope(url) as session:
            session.add(
                Delivery(
                    message_id=draft["id"],
                    channel="web",
                    account="district-web",
                    recipient="district-web",
                    locale=MULTILINGUAL,
                    status="sent",
                    provider_id=receipt.provider_id,
                    sent_at=utcnow(),
                )
            )


class server:
    """The app in a process of its own (so the clients do not share its interpreter lock)."""

    def __init__(self, env: dict[str, str], cache: bool):
        argv = [sys.executable, __file__, "--serve", *([] if cache else ["--no-cache"])]
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)

    def __enter__(self) -> str:
        port = int(self.proc.stdout.readline())
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def serve(cache: bool) -> None:
    from werkzeug.serving import make_server

    from broadcaster.core.config import Settings
    from broadcaster.web import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log in the measurement
    app = create_app(Settings())
    app.config["BROADCASTER_HTTP_CACHE"] = cache
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    print(httpd.server_port, flush=True)
    httpd.serve_forever()


class published:
    """The site published (web/publish.py, the same renders as the routes) into `home/site`,
    served by nginx on loopback with deploy/'s config."""

    def __init__(self, env: dict[str, str], home: Path):
        self.env, self.home = env, home

    def __enter__(self) -> str:
        from broadcaster.core.config import Settings, load_district
        from broadcaster.web.publish import Publisher
        from tests.web.nginx_site import Nginx

        settings = Settings(
            home=self.home,
            database_url=self.env["BROADCASTER_DATABASE_URL"],
            broker_url=self.env.get("BROADCASTER_BROKER_URL"),
            public_url="https://alerts.example.org",
        )
        district = load_district(settings.config_path)
        web = district.web.model_copy(update={"publish_dir": self.home / "site"})
        site = Publisher(settings, district.model_copy(update={"web": web}))
        started = time.perf_counter()
        self.files = len(site.publish(force=True).written)
        self.seconds = time.perf_counter() - started
        self.nginx = Nginx(site.root, self.home / "nginx", workers=os.cpu_count() or 1)
        return self.nginx.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.nginx.__exit__()


def load(url: str, clients: int, seconds: float, revalidate: bool = False) -> float:
    """Requests per second over `seconds` from `clients` keep-alive connections (spread over
    one process per core), after a warm-up; every answer must be the expected status and, for
    a 200, the same ETag as the first."""
    first = requests.get(url, timeout=30)
    first.raise_for_status()
    etag = first.headers["ETag"]
    processes = max(1, min(clients, os.cpu_count() or 1))
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    stop = time.time() + 0.5 + seconds  # the same wall-clock end for every process
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        counts = pool.starmap(
            _hammer, [(url, n, etag, revalidate, stop - seconds, stop) for n in shares]
        )
    return sum(counts) / seconds


_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.IGNORECASE)
_ETAG = re.compile(rb"\r\netag: *([^\r]+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection: *close", re.IGNORECASE)


def _hammer(
    url: str, connections: int, etag: str, revalidate: bool, start: float, stop: float
) -> int:
    """One process's share: `connections` sockets, each sent a request and then each answer
    read, until `stop` (a server that closes after each answer, as werkzeug's does, is
    reconnected to); returns the answers. Errors are RuntimeErrors, which the pool hands back."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    extra = f"If-None-Match: {etag}\r\n" if revalidate else ""
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}\r\n".encode()
    expected = b"304" if revalidate else b"200"

    def connect() -> socket.socket:
        sock = socket.create_connection(address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    socks = [connect() for _ in range(connections)]
    buffers = [b""] * connections
    done = 0
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < stop:
        for sock in socks:
            sock.sendall(request)
        for i, sock in enumerate(socks):
            buffer = buffers[i]
            while b"\r\n\r\n" not in buffer:
                buffer += _receive(sock)
            head, _, rest = buffer.partition(b"\r\n\r\n")
            found = _LENGTH.search(head)
            length = int(found.group(1)) if found else 0
            while len(rest) < length:
                rest += _receive(sock)
            buffers[i] = rest[length:]
            tag = _ETAG.search(head)
            if head[9:12] != expected or (
                not revalidate and (tag is None or tag.group(1).decode() != etag)
            ):
                raise RuntimeError(f"{url}: unexpected answer {head[:200]!r}")
            if _CLOSE.search(head):
                sock.close()
                socks[i], buffers[i] = connect(), b""
        done += connections
    for sock in socks:
        sock.close()
    return done


def _receive(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise RuntimeError("the server closed a connection before answering")
    return data


if __name__ == "__main__":
    main()
