"""Several hosts, proven: two worker hosts and a web host as Linux network namespaces, with
PostgreSQL and Redis servers of their own in the root namespace, reached only over the network.

One host loses its link (or dies) in the middle of a 1,000-recipient fan-out; the other finishes
the work after the lease: every phone texted exactly once, the message `sent`, the ledger intact,
and nothing sent again when the lost host comes back. Skipped only where a network namespace
cannot be made (tests/netns.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from celery import Celery
from sqlalchemy import func, select

from broadcaster.core import db
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT
from broadcaster.core.models import Delivery, LedgerPayload
from provider_sandbox import Sandbox
from tests.conftest import Cli, closure_vars, submit_and_approve
from tests.delivery_stack import FAST_SWEEP, Stack, texts_by_phone, write_contacts
from tests.netns import Host, Network, network

pytestmark = pytest.mark.slow

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CONTACT_ROWS = 1156  # write_contacts: siblings share a phone, some opted out -> 1,000 phones
PHONES = 1000
# A host that vanishes inside a transaction keeps its row locks (the ledger's among them) until
# the server gives up on it; the application's own session settings (db.py) say when, here
# scaled to the test's 8 s lease. The cluster itself is left at PostgreSQL's defaults.
LOST_CLIENT = {"BROADCASTER_DB_LOST_CLIENT_SECONDS": "3"}


@dataclass
class Servers:
    """The root namespace's PostgreSQL and Redis, listening on the bridge address only."""

    net: Network
    pg_admin: str  # libpq URL of the cluster's `postgres` database
    pg_base: str  # SQLAlchemy URL without a database name
    broker_url: str


def _start_redis(folder: Path, address: str, password: str) -> subprocess.Popen:
    conf = folder / "redis.conf"
    conf.write_text(
        f"bind {address}\nport 6379\nrequirepass {password}\ndir {folder}\n"
        'appendonly yes\nsave ""\n',
        encoding="utf-8",
    )
    conf.chmod(0o600)
    proc = subprocess.Popen(
        ["redis-server", str(conf)],
        stdout=(folder / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(host=address, password=password, socket_connect_timeout=1)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"redis-server did not start: {(folder / 'redis.log').read_text()}")


def _postgres(*argv: str) -> None:
    """Run a PostgreSQL program as the `postgres` user (the server refuses to run as root)."""
    subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True)


def _start_postgres(folder: Path, address: str, subnet: str, password: str) -> Path:
    """A throwaway cluster: password (SCRAM) logins from the hosts' subnet only."""
    shutil.chown(folder, "postgres")
    pwfile = folder / "pw"
    pwfile.write_text(password, encoding="utf-8")
    shutil.chown(pwfile, "postgres")
    data = folder / "data"
    _postgres(
        str(PG_BIN / "initdb"),
        "-D",
        str(data),
        "-U",
        "broadcaster",
        f"--pwfile={pwfile}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
        "-E",
        "UTF8",
    )
    with (data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
        hba.write(f"host all all {subnet} scram-sha-256\n")
    options = (
        f"-c listen_addresses={address} -c port=5432 -c unix_socket_directories={folder} "
        "-c max_connections=200 -c fsync=off"
    )
    _postgres(
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(folder / "pg.log"),
        "-w",
        "start",
    )
    return data


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[Servers]:
    if not PG_BIN.joinpath("initdb").exists() or not shutil.which("redis-server"):
        pytest.fail(f"the multi-host test needs {PG_BIN}/initdb and redis-server")
    with network(["a", "b", "w"]) as net:
        # Outside pytest's tmp folders: the `postgres` user must be able to reach the data.
        folder = Path(tempfile.mkdtemp(prefix="bc-multihost-"))
        pg_password, redis_password = secrets.token_hex(12), secrets.token_hex(12)
        subnet = f"{net.address}/{net.prefix}"
        data = None
        redis_proc = None
        try:
            redis_proc = _start_redis(folder, net.address, redis_password)
            data = _start_postgres(folder, net.address, subnet, pg_password)
            yield Servers(
                net,
                f"postgresql://broadcaster:{pg_password}@{net.address}:5432/postgres",
                f"postgresql+psycopg://broadcaster:{pg_password}@{net.address}:5432",
                f"redis://:{redis_password}@{net.address}:6379/0",
            )
        finally:
            if data is not None:
                _postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
            if redis_proc is not None:
                redis_proc.kill()
                redis_proc.wait()
            logs = tmp_path_factory.mktemp("servers")  # kept for a failure's diagnosis
            for log in ("pg.log", "redis.log"):
                if (folder / log).exists():
                    shutil.copy(folder / log, logs / log)
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Deployment:
    net: Network
    cli: Cli  # the staff's CLI, in the root namespace
    sandbox: Sandbox
    tmp_path: Path
    host_env: dict[str, dict[str, str]]  # per host: the environment its processes get
    database_url: str

    def start_worker(self, name: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", "broadcaster", "worker", "--concurrency", "8"]
        host = self.net.hosts[name]
        return host.start(
            [*argv, "--loglevel", "warning"],
            self.host_env[name],
            self.tmp_path / f"worker-{name}.log",
        )

    def run_on(self, name: str, *args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "broadcaster", *args]
        return self.net.hosts[name].run(argv, self.host_env[name])


@pytest.fixture
def deployment(servers: Servers, tmp_path: Path, monkeypatch) -> Iterator[Deployment]:
    net = servers.net
    name = f"bc_multihost_{secrets.token_hex(4)}"
    with psycopg.connect(servers.pg_admin, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{servers.pg_base}/{name}"
    redis.Redis.from_url(servers.broker_url).flushdb()
    district = tmp_path / "district.toml"  # the sample district, texting 1,000 a second
    district.write_text(
        SAMPLE_CONFIG.read_text(encoding="utf-8")
        .replace("rate_per_second = 100.0", "rate_per_second = 1000.0")
        .replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"'),
        encoding="utf-8",
    )
    web = net.hosts["w"]
    public_url = f"https://{web.address}"  # gunicorn with TLS, where a proxy would terminate it
    cert, key = _certificate(tmp_path, web.address)
    # The sandbox (in this process) posts Twilio's status callbacks there; doctor probes it.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with Sandbox(host=net.address, port=0) as sandbox:
        shared = {
            "BROADCASTER_DATABASE_URL": database_url,
            "BROADCASTER_BROKER_URL": servers.broker_url,
            "BROADCASTER_SANDBOX_URL": sandbox.url,
            "BROADCASTER_CONFIG": str(district),
            "BROADCASTER_PUBLIC_URL": public_url,
            "BROADCASTER_SECRET_KEY": secrets.token_hex(16),
            "BROADCASTER_TOKEN": "",
            "REQUESTS_CA_BUNDLE": str(cert),
        }
        host_env = {
            h: {
                **os.environ,
                **shared,
                **FAST_SWEEP,
                **LOST_CLIENT,
                "BROADCASTER_HOME": str(tmp_path / f"home-{h}"),
            }
            for h in net.hosts
        }
        cli = Cli({**shared, "BROADCASTER_HOME": str(tmp_path / "home-staff")})
        built = Deployment(net, cli, sandbox, tmp_path, host_env, database_url)
        try:
            assert cli("db", "upgrade").exit_code == 0
            # The web host as deploy/ runs it: gunicorn, here terminating TLS itself.
            gunicorn = [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"{web.address}:443",
                "--no-control-socket",
            ]
            tls = ["--certfile", str(cert), "--keyfile", str(key)]
            app = "broadcaster.web:create_app()"
            web.start([*gunicorn, "--threads", "8", *tls, app], host_env["w"], tmp_path / "web.log")
            _wait_for_web(public_url, cert, tmp_path / "web.log")
            yield built
        finally:
            for host in net.hosts.values():
                host.stop()
                host.processes.clear()
                host.reconnect()
            db.engine_for(database_url).dispose()
            with psycopg.connect(servers.pg_admin, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _certificate(folder: Path, address: str) -> tuple[Path, Path]:
    """A self-signed certificate for the web host's address: the district's own CA, as it were."""
    cert, key = folder / "web-cert.pem", folder / "web-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={address}",
            "-addext",
            f"subjectAltName=IP:{address}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _wait_for_web(url: str, cert: Path, log: Path) -> None:
    trusted = ssl.create_default_context(cafile=str(cert))
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1, context=trusted):  # noqa: S310
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the web app did not answer at {url}:\n{log.read_text()[-3000:]}")


def _texts(sandbox: Sandbox) -> int:
    return len(sandbox.posts("twilio"))


def _wait(condition, what: str, timeout: float = 120, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _delivered(database_url: str, message_id: int) -> int:
    """The message's texts a delivery report marked delivered (read from the database: a CLI
    process a second would take the CPU the reports need)."""
    with db.session_scope(database_url) as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.message_id == message_id, Delivery.status == "delivered")
            )
            or 0
        )


def _sent_twice(sandbox: Sandbox) -> dict[str, list[str]]:
    """Phones texted more than once -> when the sandbox accepted each of their texts."""
    accepted: dict[str, list[str]] = {}
    for post in sandbox.posts("twilio"):
        accepted.setdefault(post["to"], []).append(post["date_created"])
    return {phone: times for phone, times in accepted.items() if len(times) > 1}


@pytest.mark.parametrize("outage", ["link cut", "host killed"])
def test_a_host_lost_mid_fanout_the_other_finishes_every_text_once(deployment, outage):
    dep, run = deployment, deployment.cli
    tokens = {n: run.json("users", "add", n)["token"] for n in ("ana", "ben", "it")}
    expected = write_contacts(dep.tmp_path / "contacts.csv", CONTACT_ROWS)
    assert len(expected) == PHONES
    imported = run(
        "contacts", "import", str(dep.tmp_path / "contacts.csv"), "--as", "it", token=tokens["it"]
    )
    assert imported.exit_code == 0, imported.output
    dep.sandbox.set_faults([{"provider": "twilio", "fault": "latency", "ms": 15}])
    host_a = dep.net.hosts["a"]
    dep.start_worker("a")
    dep.start_worker("b")
    closure = closure_vars("a winter storm", "una tormenta invernal")  # texts everyone
    draft = run.json(
        "compose",
        "school_closure",
        "--as",
        "ana",
        "--channels",
        "sms",
        *closure,
        token=tokens["ana"],
    )
    submit_and_approve(run, tokens, draft)

    _wait(lambda: _texts(dep.sandbox) >= 300, "the first 300 texts")
    lost_at = time.time()
    if outage == "link cut":
        host_a.cut()  # stays down until host b has finished: far longer than the lease
    else:
        host_a.kill()
    assert _texts(dep.sandbox) < PHONES  # it was lost mid fan-out

    # Host b alone: a lease (8 s) and a sweep after the loss, then ~700 texts. Generous, and
    # a lost host's sweep lock (15 s, no longer renewed) must not hold the others up.
    view = Stack(run, dep.sandbox, dep.tmp_path).wait_done(draft["id"], timeout=120)
    assert view["state"] == "sent", view
    received = texts_by_phone(dep.sandbox)
    assert set(received) == set(expected)
    assert _sent_twice(dep.sandbox) == {}, f"host a lost at {lost_at:.0f}"
    with db.session_scope(dep.database_url) as session:
        taken_over = session.scalar(
            select(func.count())
            .select_from(LedgerPayload)
            .where(LedgerPayload.body.contains("after its claim lapsed"))
        )
    assert taken_over > 0  # host a held claims when it was lost; host b settled them

    if outage == "link cut":
        # The status callbacks crossed from the sandbox to the web host and reached the
        # database (once: each report costs the web host a TLS handshake and a write).
        _wait(
            lambda: _delivered(dep.database_url, draft["id"]) == PHONES,
            "every delivery report",
            timeout=240,
            every=1.0,
        )
        back_at = time.time()
        host_a.reconnect()
        # Host a's worker is back on the broker when it answers a ping; anything it still held
        # (hung connections, a batch it had claimed) then plays out: give it a lease's time.
        _wait_for_ping(dep, host_a)
        time.sleep(float(FAST_SWEEP["BROADCASTER_LEASE_SECONDS"]))
        lost = f"host a cut at {lost_at:.0f}, reconnected at {back_at:.0f}"
        assert _sent_twice(dep.sandbox) == {}, lost
        assert len(texts_by_phone(dep.sandbox)) == PHONES
        assert run.json("status", str(draft["id"]))["state"] == "sent"

    verified = run("records", "verify")
    assert verified.exit_code == 0, verified.output
    for name in dep.net.hosts:  # every host used the shared broker: none started its own
        assert not (dep.tmp_path / f"home-{name}" / "redis").exists()
    doctor = dep.run_on("b", "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def _wait_for_ping(dep: Deployment, host: Host) -> None:
    """Until the host's worker answers a broadcast ping through the broker."""
    name = f"broadcaster-{host.processes[0].pid}@"
    control = Celery(broker=dep.host_env[host.name]["BROADCASTER_BROKER_URL"], set_as_current=False)

    def answered() -> bool:
        return any(
            name in hostname for reply in control.control.ping(timeout=1) for hostname in reply
        )

    # After a long cut, TCP's retransmission backoff (up to 120 s, or the cap tests/netns.py
    # sets) decides when the worker's hung broker connections notice the link is back; a loaded
    # machine adds to it.
    _wait(answered, f"host {host.name}'s worker to answer a ping", timeout=180)
