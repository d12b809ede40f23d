"""Public pages benchmark: requests per second for `/feeds/alerts.atom` and `/` under concurrent
readers, served by the web app under werkzeug's threaded server in a process of its own, with the
page cache on and, in the same run against the same database, with it off (every request renders
the page: the baseline). A third row per route measures revalidation (If-None-Match → 304).

    python benchmarks/feeds.py --alerts 20 --clients 16 --seconds 5

Uses PostgreSQL on 127.0.0.1:5432 when it answers (a scratch database it drops afterwards), else
(or with --sqlite) SQLite. The alerts are composed with the real CLI and posted by the real web
adapter. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
    finally:
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')

    print(
        f"{args.alerts} active alerts, {args.clients} concurrent clients, {args.seconds:g} s "
        f"each, database {'PostgreSQL' if pg_name else 'SQLite'}, werkzeug threaded server"
    )
    print(f"{'route':<22}{'mode':<34}{'req/s':>10}{'ratio':>10}")
    result: dict[str, object] = {"alerts": args.alerts, "clients": args.clients}
    for route in ROUTES:
        baseline = rows[(route, False)]
        for key, mode in (
            (False, "render every time (baseline)"),
            (True, "page cache"),
            ("304", "page cache, If-None-Match (304)"),
        ):
            rate = rows[(route, key)]
            print(f"{route:<22}{mode:<34}{rate:>10.1f}{rate / baseline:>10.2f}")
        name = "atom" if route.endswith("atom") else "index"
        result[f"{name}_uncached_rps"] = round(baseline, 1)
        result[f"{name}_cached_rps"] = round(rows[(route, True)], 1)
        result[f"{name}_304_rps"] = round(rows[(route, "304")], 1)
        result[f"{name}_ratio"] = round(rows[(route, True)] / baseline, 2)
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


def load(url: str, clients: int, seconds: float, revalidate: bool = False) -> float:
    """Requests per second over `seconds` from `clients` threads, one session each, after a
    warm-up; every answer must be the expected status and the same page."""
    first = requests.get(url, timeout=30)
    first.raise_for_status()
    headers = {"If-None-Match": first.headers["ETag"]} if revalidate else {}
    expected = 304 if revalidate else 200
    stop = time.perf_counter() + seconds
    local = threading.local()

    def client(_: int) -> int:
        session = local.__dict__.setdefault("session", requests.Session())
        done = 0
        while time.perf_counter() < stop:
            response = session.get(url, headers=headers, timeout=30)
            if response.status_code != expected or (
                not revalidate and response.headers["ETag"] != first.headers["ETag"]
            ):
                raise SystemExit(f"{url}: unexpected answer {response.status_code}")
            done += 1
        return done

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(client, range(clients)))
    return total / (time.perf_counter() - start)


if __name__ == "__main__":
    main()
