"""Fan-out benchmark: one SMS message (or, with --channel voice, one call; with --channel email,
one e-mail) to N sandbox recipients through the full path (Redis, Celery workers, the database,
the ledger), and, in the same run against the same sandbox, two baselines: a plain sequential
loop of bare client requests (twilio's, or for e-mail smtplib's sendmail on one STARTTLS and AUTH
connection), and unbookkept thread pools of them in the workers' shape (as many processes, as
many threads each, one client or SMTP connection per thread, apart from the sandbox's process):
the client's ceiling on this machine.

    python benchmarks/fanout.py --recipients 10000 --latency-ms 50
    python benchmarks/fanout.py --sweep 1000,10000,100000 --latency-ms 50
    python benchmarks/fanout.py --channel voice --recipients 10000 --latency-ms 50
    python benchmarks/fanout.py --channel email --recipients 500 --latency-ms 50

With --profile DIR, py-spy (installed apart: `pip install py-spy`; not a project dependency)
samples every worker for the whole run (the threads on the CPU; with --profile-idle, waiting
threads too); its collapsed stacks are written to DIR and the frames that take the most samples,
on their own and with what they call, are printed per size.

With --sweep, one line per audience size (the first social post, texts/s and the ratio to the
thread-pool ceiling measured in the same run, the peak RSS of each kind of process), then the
sizes' results as one JSON list; otherwise one size, ending with its JSON object.

Needs Redis on 127.0.0.1:6379 (or --broker) and uses PostgreSQL on 127.0.0.1:5432 when it answers
(a scratch database it drops afterwards), else SQLite. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import multiprocessing
import os
import resource
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from urllib.request import urlopen

import psycopg
import redis
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

Bare = Client | smtplib.SMTP  # what a baseline thread sends with

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT  # noqa: E402
from channel_adapters.transport import mount  # noqa: E402
from provider_sandbox import Sandbox  # noqa: E402

SID, TOKEN, SERVICE = "AC" + "0" * 32, "bench-token", "MG" + "0" * 32
BODY = (
    "Riverside USD: All schools closed Tuesday, March 3 due to a winter storm. "
    "https://www.riversideusd.org/alerts"
)
CALLER_ID = "+15005550006"
UNLIMITED = "rate_per_second = 10000.0"
# What the baselines send for a call: the TwiML the voice adapter builds for a short message.
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-US" voice="Polly.Joanna">'
    "Riverside Unified School District. All schools are closed on Tuesday, March 3, because of "
    'a winter storm.</Say><Pause length="1"/><Say language="en-US" voice="Polly.Joanna">'
    "Riverside Unified School District. All schools are closed on Tuesday, March 3, because of "
    "a winter storm.</Say></Response>"
)
# The channel measured -> the sandbox provider that receives it.
PROVIDER = {"sms": "twilio", "voice": "voice", "email": "email"}
UNIT = {"sms": "texts", "voice": "calls", "email": "e-mails"}
MAIL_FROM = "alerts@riversideusd.org"
# What the baselines send for an e-mail: a multipart message like the adapter's (plain text and
# HTML, quoted-printable), built once; the full path builds one per delivery.
MAIL = (
    f"From: Riverside USD <{MAIL_FROM}>\r\nSubject: Riverside USD: School closure: Tuesday, "
    "March 3\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
    f"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{BODY}\r\n"
    f"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{BODY}</p>\r\n--b--\r\n"
).encode()


def send_one(client: Bare, channel: str, i: int) -> None:
    """One bare request of the channel, as the baselines make it."""
    if isinstance(client, smtplib.SMTP):
        client.sendmail(MAIL_FROM, [f"family{i}@example.org"], MAIL)
        return
    to = f"+1415{3000000 + i:07d}"
    if channel == "voice":
        client.calls.create(to=to, from_=CALLER_ID, twiml=TWIML)
    else:
        client.messages.create(to=to, messaging_service_sid=SERVICE, body=BODY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument(
        "--sweep", type=sizes, help="comma-separated audience sizes, e.g. 1000,10000,100000"
    )
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument(
        "--channel",
        choices=sorted(PROVIDER),
        default="sms",
        help="what the audience gets: texts, calls or e-mails (against a ceiling of bare "
        "calls.create or smtplib sends)",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=32, help="threads per worker")
    parser.add_argument(
        "--naive-sample",
        type=int,
        default=200,
        help="messages the sequential loop sends (its rate is per message)",
    )
    parser.add_argument(
        "--ceiling-sample",
        type=int,
        default=20_000,
        help="texts the thread pool sends for the ceiling (at most the largest size)",
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="sample the workers (py-spy)")
    parser.add_argument(
        "--profile-idle", action="store_true", help="sample waiting threads too (lock waits)"
    )
    args = parser.parse_args()
    concurrency = args.workers * args.threads
    audience = args.sweep or [args.recipients]

    with Sandbox(port=0) as sandbox:
        provider = PROVIDER[args.channel]
        latency = [{"provider": provider, "fault": "latency", "latency_ms": args.latency_ms}]
        sandbox.set_faults(latency)
        naive = naive_loop(sandbox, args.naive_sample, args.channel)
        sandbox.reset()
        sandbox.set_faults(latency)
        ceiling_n = min(args.ceiling_sample, max(audience))
        ceiling, ceiling_cpu = thread_pool(
            sandbox, ceiling_n, args.workers, args.threads, args.channel
        )
        results = []
        for size in audience:
            sandbox.reset()
            sandbox.set_faults(latency)
            full = full_path(sandbox, args, size, concurrency)
            results.append(summary(args, size, full, naive, ceiling, ceiling_cpu))
            if args.sweep:
                print(sweep_line(results[-1]), flush=True)
                print(cpu_line(results[-1]), flush=True)
        bench_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    print(
        f"concurrency {concurrency} ({args.workers} workers x {args.threads} threads), "
        f"database {full['database']}, {args.latency_ms} ms provider latency, "
        f"channel {args.channel}"
    )
    print(f"{'':<28}{UNIT[args.channel] + '/s':>10}{'ratio':>10}")
    bare = "smtplib" if args.channel == "email" else "twilio"
    print(f"{f'sequential {bare} loop':<28}{naive:>10.1f}{naive / ceiling:>10.3f}")
    print(f"{f'thread pool ({bare} ceiling)':<28}{ceiling:>10.1f}{1:>10.3f}")
    for result in results:
        label = f"full path, {result['recipients']:,}"
        print(
            f"{label:<28}{result['full_path_sms_per_s']:>10.1f}{result['ratio_to_ceiling']:>10.3f}"
        )
    print(f"peak RSS of this process (the sandbox and the baselines): {bench_rss} MB")
    if args.sweep:
        print(json.dumps(results))
    else:
        print(sweep_line(results[0]))
        print(cpu_line(results[0]))
        print(json.dumps(results[0]))


def sizes(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("sizes are whole numbers: 1000,10000,100000") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("sizes are positive: 1000,10000,100000")
    return values


def summary(
    args: argparse.Namespace, size: int, full: dict, naive: float, ceiling: float, ceiling_cpu: dict
) -> dict:
    return {
        "recipients": size,
        "latency_ms": args.latency_ms,
        "full_path_sms_per_s": round(full["sms_per_s"], 1),
        "naive_sms_per_s": round(naive, 1),
        "ceiling_sms_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(full["sms_per_s"] / ceiling, 3),
        "elapsed_s": round(full["elapsed_s"], 1),
        "first_social_post_ms": full["first_social_post_ms"],
        "channel": args.channel,
        "cpu_ms_per_text": full["cpu_ms_per_text"],
        "ceiling_cpu_ms_per_text": ceiling_cpu,
        "peak_rss_mb": full["peak_rss_mb"],
    }


def sweep_line(result: dict) -> str:
    rss = ", ".join(f"{kind} {mb} MB" for kind, mb in result["peak_rss_mb"].items())
    unit = UNIT[result["channel"]]
    return (
        f"{result['recipients']:>9,} {unit}: first post {result['first_social_post_ms']} ms, "
        f"{result['full_path_sms_per_s']:.0f} {unit}/s ({result['ratio_to_ceiling']:.2f} of the "
        f"ceiling), all accepted in {result['elapsed_s']:.0f} s; peak RSS {rss}"
    )


def cpu_line(result: dict) -> str:
    unit = UNIT[result["channel"]]

    def parts(cpu: dict) -> str:
        listed = ", ".join(f"{kind} {ms}" for kind, ms in cpu.items())
        return f"{listed} (total {sum(cpu.values()):.2f})"

    return (
        f"{'':>9} CPU ms per {unit[:-1]}: full path {parts(result['cpu_ms_per_text'])}; "
        f"ceiling {parts(result['ceiling_cpu_ms_per_text'])}"
    )


def twilio_client(sandbox_url: str) -> Client:
    http = TwilioHttpClient(timeout=30)
    mount(http.session, sandbox_url=sandbox_url, timeout=30)
    return Client(SID, TOKEN, http_client=http)


def smtp_client(sandbox: Sandbox | str) -> smtplib.SMTP:
    """An SMTP connection to the sandbox as the adapter makes one: STARTTLS trusting the
    sandbox's certificate, then AUTH."""
    where = (
        sandbox.smtp_address()
        if isinstance(sandbox, Sandbox)
        else json.loads(urlopen(f"{sandbox}/_sandbox/smtp").read())  # noqa: S310 (loopback)
    )
    context = ssl.create_default_context(cadata=where["cert_pem"])
    context.check_hostname = False
    smtp = smtplib.SMTP("127.0.0.1", int(where["port"]), "riversideusd.org", timeout=30)
    smtp.starttls(context=context)
    smtp.login("bench", "bench-password")
    return smtp


def bare_client(sandbox: Sandbox | str, channel: str) -> Bare:
    url = sandbox.url if isinstance(sandbox, Sandbox) else sandbox
    return smtp_client(sandbox) if channel == "email" else twilio_client(url)


def naive_loop(sandbox: Sandbox, n: int, channel: str) -> float:
    client = bare_client(sandbox, channel)
    start = time.perf_counter()
    for i in range(n):
        send_one(client, channel, i)
    return n / (time.perf_counter() - start)


def thread_pool(
    sandbox: Sandbox, n: int, processes: int, threads: int, channel: str
) -> tuple[float, dict[str, float]]:
    """Bare SDK calls in the workers' shape (`processes` × `threads`), each process apart from
    the sandbox's: in the sandbox's own process the clients would take its interpreter's lock
    from it, and the ceiling would be the lower for it. Texts/s, and the CPU ms per text of the
    clients and of the sandbox (this process)."""
    share = -(-n // processes)
    spawn = multiprocessing.get_context("spawn")
    sandbox_before = own_cpu_s()
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        parts = [
            pool.submit(pool_part, sandbox.url, first, min(share, n - first), threads, channel)
            for first in range(0, n, share)
        ]
        spans = [part.result() for part in parts]
    sandbox_cpu = own_cpu_s() - sandbox_before
    rate = n / (max(end for _, end, _ in spans) - min(start for start, _, _ in spans))
    clients_cpu = sum(cpu for _, _, cpu in spans)
    return rate, {"clients": ms_per(clients_cpu, n), "sandbox": ms_per(sandbox_cpu, n)}


def pool_part(
    sandbox_url: str, first: int, count: int, threads: int, channel: str
) -> tuple[float, float, float]:
    """One process's share of the ceiling: (when its first call started, when its last ended,
    the CPU seconds its calls took)."""
    local = threading.local()

    def send(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = bare_client(sandbox_url, channel)  # one client per thread
        send_one(local.client, channel, i)

    cpu, start = own_cpu_s(), time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(first, first + count)))
    return start, time.time(), own_cpu_s() - cpu


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ms_per(cpu_s: float, n: int) -> float:
    return round(cpu_s * 1000 / n, 3)


def cpu_s_by_kind(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of the given processes, and of every PostgreSQL and Redis server
    process on the machine (with the children they reaped: PostgreSQL's ended backends). Only
    meaningful on an otherwise quiet machine."""
    tick = os.sysconf("SC_CLK_TCK")
    services = {"postgres": "PostgreSQL", "redis-server": "Redis"}
    totals = {kind: 0.0 for kind in [*pids, *services.values()]}
    wanted = {pid: kind for kind, group in pids.items() for pid in group}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            # After the name: state is field 3, utime/stime/cutime/cstime fields 14-17.
            fields = text[text.rindex(")") + 2 :].split()
            own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
            pid = int(stat.parent.name)
            if pid in wanted:
                totals[wanted[pid]] += own / tick
            elif name in services:
                totals[services[name]] += (own + reaped) / tick
    return totals


def scratch_database(home: Path) -> tuple[str, str | None]:
    try:
        admin = psycopg.connect(
            "postgresql://root@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=2
        )
    except psycopg.OperationalError:
        return f"sqlite:///{home / 'bench.db'}", None
    name = f"bc_bench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://root@127.0.0.1:5432/{name}", name


def full_path(sandbox: Sandbox, args: argparse.Namespace, size: int, concurrency: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix="broadcaster-bench-"))
    url, pg_name = scratch_database(home)
    redis.Redis.from_url(args.broker).flushdb()
    config = home / "district.toml"
    sample = SAMPLE_CONFIG.read_text(encoding="utf-8")
    config.write_text(
        # Far above what the path can send: the accounts' rate limits (segments, calls per
        # second) are the district's policy, not what is measured here.
        sample.replace("rate_per_second = 100.0", "rate_per_second = 10000.0")
        .replace('name = "district-voice"\n', f'name = "district-voice"\n{UNLIMITED}\n')
        .replace('name = "district-email"\n', f'name = "district-email"\n{UNLIMITED}\n')
        .replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"'),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "BROADCASTER_HOME": str(home),
        "BROADCASTER_DATABASE_URL": url,
        "BROADCASTER_BROKER_URL": args.broker,
        "BROADCASTER_SANDBOX_URL": sandbox.url,
        "BROADCASTER_CONFIG": str(config),
        "BROADCASTER_TOKEN": "",
    }
    cli = [sys.executable, "-m", "broadcaster"]

    def run(*argv: str, token: str = "") -> str:
        done = subprocess.run(
            [*cli, *argv], env={**env, "BROADCASTER_TOKEN": token}, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"broadcaster {argv[0]} failed: {done.stderr.strip()}")
        return done.stdout

    run("db", "upgrade")
    tokens = {
        n: json.loads(run("users", "add", n, "--json"))["token"] for n in ("ana", "ben", "it")
    }
    contacts = home / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        # E-mails need the contact list's email column (and a household for it).
        mail = ["household", "email"] if args.channel == "email" else []
        writer.writerow([*mail, "phone", "language", "schools", "routes", "grades", "opted_out"])
        for i in range(size):
            addressed = [f"h{i}", f"family{i}@example.org"] if mail else []
            writer.writerow(
                [
                    *addressed,
                    f"+1415{4000000 + i:07d}",
                    "es" if i % 3 == 0 else "en",
                    "lincoln-hs",
                    "12",
                    "10",
                    "no",
                ]
            )
    import_rss_mb = run_measured(
        [*cli, "contacts", "import", str(contacts), "--as", "it"],
        {**env, "BROADCASTER_TOKEN": tokens["it"]},
    )
    draft = json.loads(
        run(
            "compose",
            "school_closure",
            "--as",
            "ana",
            "--channels",
            f"{args.channel},x",
            "--var",
            "schools=all",
            "--var",
            "date=2026-03-03",
            "--var",
            "reason=a winter storm",
            "--var",
            "reason.es=una tormenta invernal",
            "--audience",
            "all",
            "--json",
            token=tokens["ana"],
        )
    )
    run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])

    workers = [
        subprocess.Popen(
            [
                *cli,
                "worker",
                "--concurrency",
                str(args.threads),
                "--loglevel",
                "warning",
                "--no-beat",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    samplers: list[subprocess.Popen] = []
    try:
        time.sleep(3)  # let the workers connect before the clock starts
        if args.profile:  # once the workers' interpreters are up, or py-spy cannot attach
            samplers = [
                profile_worker(
                    worker.pid, args.profile / f"workers-{size}-{i}.txt", args.profile_idle
                )
                for i, worker in enumerate(workers)
            ]
        worker_pids = {"workers": [worker.pid for worker in workers]}
        cpu_before, sandbox_before = cpu_s_by_kind(worker_pids), own_cpu_s()
        approved_at = time.time()
        approve_rss_mb = run_measured(
            [*cli, "approve", str(draft["id"]), "--as", "ben"],
            {**env, "BROADCASTER_TOKEN": tokens["ben"]},
        )
        # Count, do not copy: copying the sandbox's posts takes the GIL (and the lock) from the
        # sandbox it measures, longer the more texts it holds. The end time is the last text's
        # own timestamp, not when the poll noticed.
        provider = PROVIDER[args.channel]
        while sandbox.post_count(provider) < size:
            time.sleep(1.0)
            if time.time() - approved_at > 600 + size / 100:  # 10 minutes, more for a million
                raise SystemExit(f"the full path did not finish in {600 + size / 100:.0f} s")
        cpu_after, sandbox_after = cpu_s_by_kind(worker_pids), own_cpu_s()
        last_text = max(
            r["time"] for r in sandbox.requests(provider) if r["method"] in ("POST", "SMTP")
        )
        first_post = min(
            (r["time"] for r in sandbox.requests("x") if r["method"] == "POST"), default=None
        )
        # The clock starts when the approval commits (its ledger entry), not when the CLI starts.
        shown = json.loads(run("show", str(draft["id"]), "--json"))
        approved_at = next(
            datetime.fromisoformat(step["at"]).timestamp()
            for step in shown["timeline"]
            if step["event"] == "message.approve"
        )
        elapsed = datetime.fromisoformat(last_text).timestamp() - approved_at
        # The after-action report reads the whole message: its memory must not grow with it.
        report_rss_mb = run_measured([*cli, "report", str(draft["id"]), "--json"], env)
        worker_rss_mb = max(peak_rss_mb(worker.pid) for worker in workers)
    finally:  # a failed run must not leave workers on the broker for the next one
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
        for sampler in samplers:  # it writes its file once the worker has exited
            sampler.wait(timeout=60)
    if args.profile:
        print_top_frames(sorted(args.profile.glob(f"workers-{size}-*.txt")), size)
    if pg_name:
        with psycopg.connect("postgresql://root@127.0.0.1:5432/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
    first_ms = (
        round((datetime.fromisoformat(first_post).timestamp() - approved_at) * 1000)
        if first_post
        else None
    )
    return {
        "sms_per_s": size / elapsed,
        "elapsed_s": elapsed,
        "first_social_post_ms": first_ms,
        # From the approval to the last text; the approving command itself is not counted.
        "cpu_ms_per_text": {
            **{kind: ms_per(cpu_after[kind] - cpu_before[kind], size) for kind in cpu_before},
            "sandbox": ms_per(sandbox_after - sandbox_before, size),
        },
        "peak_rss_mb": {
            "worker": worker_rss_mb,
            "approve": approve_rss_mb,
            "contacts import": import_rss_mb,
            "report": report_rss_mb,
        },
        "database": "PostgreSQL" if pg_name else "SQLite",
    }


def run_measured(argv: list[str], env: dict[str, str]) -> float:
    """Run a command to the end; its peak RSS in MB (its VmHWM, read until it exits: the
    kernel's rusage for a child spawned with vfork reports the parent's size, not the child's)."""
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    while child.poll() is None:
        with contextlib.suppress(OSError):  # it may have just exited
            peak = max(peak, peak_rss_mb(child.pid))
        time.sleep(0.02)
    if child.returncode:
        raise SystemExit(
            f"{argv[2:4]} failed: {child.stderr.read().decode() if child.stderr else ''}"
        )
    return peak


def profile_worker(pid: int, out: Path, idle: bool) -> subprocess.Popen:
    """py-spy sampling a running worker until it exits: the threads on the CPU, or with `idle`
    every thread (a wait on a lock or on the database counts); collapsed stacks
    ("frame;frame;... count") in `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = ["py-spy", "record", "--pid", str(pid), "--nonblocking", "--rate", "50"]
    argv += ["--format", "raw", "--output", str(out), *(["--idle"] if idle else [])]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def print_top_frames(files: list[Path], size: int, top: int = 15) -> None:
    """The broadcaster's and its libraries' frames that the worker threads spent the most samples
    in: on their own (the innermost frame) and with what they called (anywhere on the stack)."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = [f for f in stack.split(";") if "(threading.py)" not in f]
            if not frames or not count.isdigit():
                continue
            own[frames[-1]] = own.get(frames[-1], 0) + int(count)
            for frame in set(frames):
                total[frame] = total.get(frame, 0) + int(count)
    samples = sum(own.values()) or 1
    for title, counts in (("own", own), ("with callees", total)):
        print(f"top frames at {size:,} ({title}, % of {samples:,} samples):")
        for frame, count in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {100 * count / samples:5.1f}%  {frame}")


def peak_rss_mb(pid: int) -> float:
    """A running process's peak RSS so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


if __name__ == "__main__":
    main()
