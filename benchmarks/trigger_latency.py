"""Trigger benchmark: the time from `broadcaster trigger lockdown ...` starting to the provider
sandbox receiving the message's first provider request, with one worker running (as in
benchmarks/fanout.py), beside the same command with every verb module imported up front, as the
command line did before its verbs were imported lazily (broadcaster/cli/main.py).

    python benchmarks/trigger_latency.py --runs 7

Each run triggers a new lockdown of one school of the sample district (its families texted, X,
Facebook and the web page), the two ways in turn so that both see the same load. Per way: the best
and the median of the runs, the ratio of the medians to the eager import, and where the time goes,
from the message's own ledger: the command's start to the draft composed (interpreter, imports,
the token check, rendering), to the dispatch committed, to the first provider request (the worker
picking the task up and sending). The last line printed is one JSON object.

Needs Redis on 127.0.0.1:6379 (or --broker; its database is emptied) and uses PostgreSQL on
127.0.0.1:5432 when it answers (a scratch database it drops afterwards), else SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psycopg
import redis
from cli_startup import EAGER, bench_env
from fanout import scratch_database

from broadcaster.core.config import SAMPLE_DISTRICT
from provider_sandbox import Sandbox

TRIGGER = ["trigger", "lockdown", "--as", "carmen", "--var", "school=lincoln-hs"]
TRIGGER += ["--audience", "school:lincoln-hs", "--yes", "--json"]
# The ledger events that split a run: the draft written, the dispatch committed.
COMPOSED, DISPATCHED = "message.composed", "message.dispatch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="broadcaster-trigger-"))
    url, pg_name = scratch_database(home)
    redis.Redis.from_url(args.broker).flushdb()
    script = os.path.join(os.path.dirname(sys.executable), "broadcaster")
    ways = {
        "broadcaster trigger": [script, *TRIGGER],
        "eager import (before)": [
            sys.executable,
            "-c",
            f"{EAGER}\nfrom broadcaster.cli.main import main\nmain()",
            *TRIGGER,
        ],
    }
    try:
        runs = measure(ways, home, url, args.broker, args.runs)
    finally:  # a failed run leaves no scratch database behind
        if pg_name:
            with psycopg.connect(
                "postgresql://root@127.0.0.1:5432/postgres", autocommit=True
            ) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    report(runs, "PostgreSQL" if pg_name else "SQLite")


def measure(
    ways: dict[str, list[str]], home: Path, url: str, broker: str, runs_each: int
) -> dict[str, list[dict[str, float]]]:
    """The runs of each way, with the sandbox in this process and one worker."""
    script = ways["broadcaster trigger"][0]
    with Sandbox(port=0) as sandbox:
        env = bench_env(str(home)) | {
            "BROADCASTER_DATABASE_URL": url,
            "BROADCASTER_BROKER_URL": broker,
            "BROADCASTER_SANDBOX_URL": sandbox.url,
        }
        token = set_up(env)
        env["BROADCASTER_TOKEN"] = token
        worker = subprocess.Popen(
            [script, "worker", "--concurrency", "4", "--loglevel", "warning", "--no-beat"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(home / "worker.log").open("wb"),  # read when no request comes
        )
        try:
            one_run(sandbox, ways["broadcaster trigger"], env)  # the worker is up; caches warm
            runs: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
            for _ in range(runs_each):
                for way, argv in ways.items():
                    runs[way].append(one_run(sandbox, argv, env))
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    return runs


def set_up(env: dict[str, str]) -> str:
    """The schema, the sample district's contacts, and the incident commander's token."""

    def run(*argv: str, token: str = "") -> str:
        done = subprocess.run(
            [sys.executable, "-m", "broadcaster", *argv],
            env={**env, "BROADCASTER_TOKEN": token},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            sys.exit(f"broadcaster {argv[0]} failed: {done.stderr.strip()}")
        return done.stdout

    run("db", "upgrade")
    admin = json.loads(run("users", "add", "it", "--json"))["token"]
    run("contacts", "import", str(SAMPLE_DISTRICT / "contacts.csv"), "--as", "it", token=admin)
    added = run("users", "add", "carmen", "--as", "it", "--json", token=admin)
    return str(json.loads(added)["token"])


def one_run(sandbox: Sandbox, argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Trigger once; seconds from the command's start to the draft composed, the dispatch
    committed and the first provider request, and to the command's exit."""
    sandbox.reset()
    started = time.time()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = None
    while first is None:
        first = next((r["time"] for r in sandbox.requests() if r["method"] == "POST"), None)
        if child.poll() is not None and child.returncode:
            sys.exit(f"the trigger failed: {child.stderr.read().decode() if child.stderr else ''}")
        if time.time() - started > 120:
            log = Path(env["BROADCASTER_HOME"], "worker.log").read_text(errors="replace")
            sys.exit(f"no provider request within 120 s of the trigger; the worker's log:\n{log}")
        time.sleep(0.005)
    out, _ = child.communicate(timeout=120)
    exited = time.time()
    message_id = int(json.loads(out)["id"])
    events = ledger_times(env, message_id)
    settle(sandbox)
    return {
        "composed": events[COMPOSED] - started,
        "dispatched": events[DISPATCHED] - started,
        "first_request": stamp(first) - started,
        "exited": exited - started,
    }


def ledger_times(env: dict[str, str], message_id: int) -> dict[str, float]:
    shown = subprocess.run(
        [sys.executable, "-m", "broadcaster", "show", str(message_id), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    timeline = json.loads(shown.stdout)["timeline"]
    return {step["event"]: stamp(step["at"]) for step in reversed(timeline)}


def settle(sandbox: Sandbox) -> None:
    """Wait until the message's other deliveries are done (no request for a second), so the next
    run starts on an idle worker."""
    count, quiet_since = -1, time.time()
    while time.time() - quiet_since < 1.0:
        now = len(sandbox.requests())
        if now != count:
            count, quiet_since = now, time.time()
        time.sleep(0.05)


def stamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def report(runs: dict[str, list[dict[str, float]]], database: str) -> None:
    eager = statistics.median(r["first_request"] for r in runs["eager import (before)"])
    print(f"{len(runs['broadcaster trigger'])} runs each, database {database}; seconds")
    header = "start to first provider request"
    print(f"{'':<24}{header:>33}{'ratio':>7}   median to composed / dispatched / exit")
    results = {}
    for way, rows in runs.items():
        median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        best = min(r["first_request"] for r in rows)
        ratio = median["first_request"] / eager
        results[way] = {"median": median, "best_first_request": best, "ratio_to_eager": ratio}
        split = " / ".join(f"{median[k]:.3f}" for k in ("composed", "dispatched", "exited"))
        first = f"best {best:.3f}, median {median['first_request']:.3f}"
        print(f"{way:<24}{first:>33}{ratio:>7.2f}   {split}")
    print(json.dumps({"database": database, "runs": runs, "results": results}))


if __name__ == "__main__":
    main()
