"""`broadcaster doctor`: a sound deployment passes every check, and each misconfiguration makes
its own check fail (exit 1), named in one line, with no secret in the output."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import time_machine
from alembic import command
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.serving import make_server

from broadcaster.core import db
from broadcaster.core.config import SAMPLE_DISTRICT, Settings
from broadcaster.core.models import WorkerHeartbeat
from broadcaster.delivery import heartbeat
from broadcaster.operations.doctor import check_at_start
from broadcaster.records import checkpoints, signing
from broadcaster.web import create_app
from tests.conftest import Cli
from tests.delivery_stack import REDIS_DB, REDIS_SERVER

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
# Only a server database can be shared by hosts, or have a clock of its own.
POSTGRESQL_ONLY = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
TWILIO_VARIABLE = "H2_DOCTOR_TWILIO_TOKEN"
SECRET = "s3cret-value-never-printed"
SMS_WITH_CREDENTIALS = f"""credentials_env = {{ auth_token = "{TWILIO_VARIABLE}" }}
settings = {{ account_sid = "AC0123", messaging_service_sid = "MG0123" }}
"""


def district_copy(tmp_path: Path, edit: dict[str, str] | None = None) -> Path:
    """The sample district in a folder of its own, with text replaced (old -> new)."""
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_DISTRICT, folder, dirs_exist_ok=True)
    path = folder / "district.toml"
    text = path.read_text()
    for old, new in (edit or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


def with_real_sms(tmp_path: Path) -> Path:
    """The sample district whose sms account texts through Twilio (it names its credentials)."""
    old = 'name = "district-sms"\nchannel = "sms"\n'
    return district_copy(tmp_path, {old: old + SMS_WITH_CREDENTIALS})


@pytest.fixture
def doctor_env(run: Cli, tmp_path: Path) -> Cli:
    """A deployment sound apart from its workers: its own district file, a broker that answers
    (the test Redis, on SQLite too), a sandbox address for its sandbox-served accounts."""
    run.env["BROADCASTER_CONFIG"] = str(district_copy(tmp_path))
    run.env.setdefault("BROADCASTER_BROKER_URL", f"{REDIS_SERVER}/{REDIS_DB}")
    run.env["BROADCASTER_SANDBOX_URL"] = "http://127.0.0.1:8025"
    return run


def with_signing_key(run: Cli) -> Path:
    """The doctor_env district signs its ledger; its key made by `records keygen` (the ledger's
    first entry). Returns the key file."""
    path = Path(run.env["BROADCASTER_CONFIG"])
    path.write_text(path.read_text() + '\n[records]\nsigning_key = "keys/ledger.key"\n')
    result = run("records", "keygen")
    assert result.exit_code == 0, result.output
    return path.parent / "keys" / "ledger.key"


def doctor(run: Cli, **env: str) -> tuple[int, dict[str, dict]]:
    """Exit code and checks by name of `broadcaster doctor --json`."""
    runner = Cli({**run.env, **env})
    result = runner("doctor", "--json")
    assert SECRET not in result.output
    report = json.loads(result.stdout)
    assert report["ok"] == (result.exit_code == 0)
    return result.exit_code, {c["name"]: c for c in report["checks"]}


def failing(run: Cli, name: str, **env: str) -> str:
    """The one line the named check says, having failed."""
    code, checks = doctor(run, **env)
    assert code == 1
    assert checks[name]["ok"] is False, checks[name]
    return checks[name]["detail"]


def register(
    broker: str,
    queues: tuple[str, ...] = ("urgent", "social", "sms", "web", "default"),
    beat: bool = True,
    url: str = "",
) -> int:
    return heartbeat.register(url, list(queues), beat, heartbeat.broker_identity(broker))


# --- every check passes ---------------------------------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, in PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def https_web_app(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real web app over https on a loopback port; yields its URL and its certificate."""
    cert, key = self_signed(tmp_path)
    settings = Settings(
        home=Path(env["BROADCASTER_HOME"]),
        config=Path(env["BROADCASTER_CONFIG"]),
        database_url=env["BROADCASTER_DATABASE_URL"],
        broker_url=env["BROADCASTER_BROKER_URL"],
    )
    server = make_server(
        "127.0.0.1", 0, create_app(settings), threaded=True, ssl_context=(str(cert), str(key))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_port}", cert
    finally:
        server.shutdown()


def test_a_sound_deployment_passes_every_check(stack, tmp_path):
    run = stack.run
    run.env["BROADCASTER_CONFIG"] = str(with_real_sms(tmp_path))
    run.env["BROADCASTER_HEARTBEAT_EVERY"] = "1"
    stack.start_worker()  # every queue, with the beat
    with https_web_app(run.env, tmp_path) as (public_url, cert):
        env = {
            TWILIO_VARIABLE: SECRET,
            "BROADCASTER_PUBLIC_URL": public_url,
            "REQUESTS_CA_BUNDLE": str(cert),  # the district's own CA, as it were
        }
        stack.wait_for(lambda: doctor(run, **env)[1]["workers"]["ok"])
        code, checks = doctor(run, **env)
        text = Cli({**run.env, **env})("doctor")
    assert code == 0, checks
    assert all(check["ok"] for check in checks.values())
    assert list(checks) == [
        "district",
        "database",
        "broker",
        "one broker",
        "clock",
        "workers",
        "credentials",
        "roster",
        "templates",
        "public site",
        "public url",
        "sandbox",
        "signing key",
        "checkpoints",
    ]
    assert "beat on" in checks["workers"]["detail"]
    assert "district-sms" in checks["credentials"]["detail"]
    assert "district-sms" not in checks["sandbox"]["detail"]  # it has credentials now
    assert "district-x" in checks["sandbox"]["detail"]  # informational
    assert text.exit_code == 0 and len(text.stdout.splitlines()) == len(checks)


# --- each check fails on its own misconfiguration ------------------------------------------


@SQLITE_ONLY
def test_a_district_file_that_does_not_load(doctor_env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[district]\nname = "x"\n')
    code, checks = doctor(doctor_env, BROADCASTER_CONFIG=str(bad))
    assert code == 1
    assert not checks["district"]["ok"] and str(bad) in checks["district"]["detail"]
    assert "credentials" not in checks  # what needs the district is not guessed at


def test_a_database_behind_its_migrations(doctor_env, db_url):
    with db.engine_for(db_url).begin() as connection:
        cfg = db.alembic_config(db_url)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0011")
    detail = failing(doctor_env, "database")
    assert "0011" in detail and "broadcaster db upgrade" in detail


@SQLITE_ONLY
def test_a_database_that_does_not_answer(doctor_env):
    url = f"postgresql+psycopg://root:{SECRET}@127.0.0.1:1/broadcaster"
    code, checks = doctor(doctor_env, BROADCASTER_DATABASE_URL=url)
    assert code == 1
    assert not checks["database"]["ok"] and "cannot reach" in checks["database"]["detail"]
    assert "root:***@127.0.0.1:1" in checks["database"]["detail"]
    assert "clock" not in checks and "workers" not in checks  # one problem, one line


@SQLITE_ONLY
def test_a_broker_that_does_not_answer(doctor_env):
    detail = failing(
        doctor_env, "broker", BROADCASTER_BROKER_URL=f"redis://:{SECRET}@127.0.0.1:1/0"
    )
    assert "redis://:***@127.0.0.1:1/0 does not answer" in detail


@POSTGRESQL_ONLY
def test_a_server_database_with_the_embedded_broker(doctor_env, db_url):
    register(doctor_env.env["BROADCASTER_BROKER_URL"], url=db_url)
    env = {k: v for k, v in doctor_env.env.items() if k != "BROADCASTER_BROKER_URL"}
    detail = failing(Cli(env), "one broker")
    assert "BROADCASTER_BROKER_URL is unset" in detail
    assert f"set BROADCASTER_BROKER_URL to the broker the other hosts use: {REDIS_SERVER}" in detail


def test_a_broker_other_than_the_live_workers_one(doctor_env, db_url):
    register(f"redis://:{SECRET}@redis.district.internal:6379/0", url=db_url)
    detail = failing(doctor_env, "one broker")
    assert "redis://:***@redis.district.internal:6379/0" in detail


def test_no_live_worker(doctor_env):
    detail = failing(doctor_env, "workers")
    assert "no worker has reported" in detail and "broadcaster worker" in detail


def test_a_worker_gone_silent_is_not_live(doctor_env, db_url):
    row = register(doctor_env.env["BROADCASTER_BROKER_URL"], url=db_url)
    with db.session_scope(db_url) as session:
        found = session.get(WorkerHeartbeat, row)
        found.last_seen -= dt.timedelta(seconds=heartbeat.gone_after_s() + 1)
    assert "no worker has reported" in failing(doctor_env, "workers")


def test_no_live_worker_runs_the_beat(doctor_env, db_url):
    register(doctor_env.env["BROADCASTER_BROKER_URL"], beat=False, url=db_url)
    assert "no live worker runs the beat" in failing(doctor_env, "workers")


def test_a_queue_no_live_worker_consumes(doctor_env, db_url):
    register(doctor_env.env["BROADCASTER_BROKER_URL"], queues=("sms", "default"), url=db_url)
    detail = failing(doctor_env, "workers")
    assert "no live worker consumes urgent, social, web" in detail


@SQLITE_ONLY
def test_an_account_whose_credential_variables_are_unset(doctor_env, tmp_path):
    doctor_env.env["BROADCASTER_CONFIG"] = str(with_real_sms(tmp_path))
    detail = failing(doctor_env, "credentials", **{TWILIO_VARIABLE: ""})
    assert detail == f"unset: account district-sms: {TWILIO_VARIABLE}"


@SQLITE_ONLY
def test_a_roster_that_cannot_be_read(doctor_env, tmp_path):
    path = Path(doctor_env.env["BROADCASTER_CONFIG"])
    (path.parent / "roster.csv").unlink()
    assert "cannot read the student roster" in failing(doctor_env, "roster")


@SQLITE_ONLY
def test_a_template_folder_that_is_missing(doctor_env, tmp_path):
    path = district_copy(
        tmp_path, {"[district]": 'templates_dirs = ["our-templates"]\n\n[district]'}
    )
    detail = failing(doctor_env, "templates", BROADCASTER_CONFIG=str(path))
    assert "our-templates" in detail and "templates_dirs" in detail


@SQLITE_ONLY
def test_a_public_site_folder_in_the_way_of_a_file(doctor_env, tmp_path):
    (tmp_path / "site-file").write_text("not a folder")
    for publish_dir in ("site-file", "site-file/under"):
        path = district_copy(
            tmp_path, {"# [web]\n": f'[web]\npublish_dir = "{tmp_path / publish_dir}"\n'}
        )
        detail = failing(doctor_env, "public site", BROADCASTER_CONFIG=str(path))
        assert f"{tmp_path / 'site-file'} is not a folder" in detail


@SQLITE_ONLY
def test_a_public_site_folder_not_made_yet_is_sound(doctor_env, tmp_path):
    path = district_copy(
        tmp_path, {"# [web]\n": f'[web]\npublish_dir = "{tmp_path / "site" / "public"}"\n'}
    )
    _, checks = doctor(doctor_env, BROADCASTER_CONFIG=str(path))
    assert checks["public site"]["ok"], checks["public site"]
    assert "made on the first publish" in checks["public site"]["detail"]


@SQLITE_ONLY
def test_a_public_url_that_is_not_https(doctor_env):
    detail = failing(doctor_env, "public url", BROADCASTER_PUBLIC_URL="http://alerts.example.org")
    assert "is not https" in detail


@SQLITE_ONLY
def test_a_public_url_that_does_not_answer(doctor_env):
    detail = failing(doctor_env, "public url", BROADCASTER_PUBLIC_URL="https://127.0.0.1:1")
    assert "https://127.0.0.1:1/healthz does not answer" in detail


@SQLITE_ONLY
def test_no_public_url_while_an_sms_account_uses_twilio(doctor_env, tmp_path):
    doctor_env.env["BROADCASTER_CONFIG"] = str(with_real_sms(tmp_path))
    detail = failing(doctor_env, "public url", **{TWILIO_VARIABLE: SECRET})
    assert "BROADCASTER_PUBLIC_URL is unset" in detail and "district-sms" in detail


@SQLITE_ONLY
def test_sandbox_served_alerts_without_a_sandbox(doctor_env):
    detail = failing(doctor_env, "sandbox", BROADCASTER_SANDBOX_URL="")
    assert "district-x" in detail and "test-x" not in detail  # rehearsal accounts are not alerts


@pytest.mark.skipif(not shutil.which("faketime"), reason="needs faketime (apt install faketime)")
@POSTGRESQL_ONLY
def test_a_clock_far_from_the_databases(doctor_env):
    result = subprocess.run(
        ["faketime", "-f", "+30s", sys.executable, "-m", "broadcaster", "doctor", "--json"],
        env={**os.environ, **doctor_env.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert not checks["clock"]["ok"]
    assert "s ahead of the database's" in checks["clock"]["detail"]


@SQLITE_ONLY
def test_a_signing_key_kept_on_the_hosts_that_sign_only(doctor_env):
    key = with_signing_key(doctor_env)
    _, checks = doctor(doctor_env)
    assert checks["signing key"]["ok"] and str(key) in checks["signing key"]["detail"]
    # A worker-only host: no key file, and nothing wrong with that.
    kept = key.read_bytes()
    key.unlink()
    _, checks = doctor(doctor_env)
    assert checks["signing key"] == {
        "name": "signing key",
        "ok": True,
        "detail": f"{key} is not on this host: only the hosts that sign (the beat's worker on "
        "the default queue, the web app for exports) need it; run doctor there",
    }
    warned: list[str] = []  # what a worker-only host's worker says as it starts
    check_at_start(doctor_env.settings(), warned.append)
    assert not [line for line in warned if "signing key" in line or "checkpoints" in line]
    # A file that is there must be the key, readable by its owner only.
    key.mkdir()
    assert "is not a file" in failing(doctor_env, "signing key")
    key.rmdir()
    key.write_text("not a key\n")
    key.chmod(0o600)
    assert "is not a signing key" in failing(doctor_env, "signing key")
    key.write_bytes(kept)
    key.chmod(0o644)
    assert f"run `chmod 600 {key}`" in failing(doctor_env, "signing key")


def test_checkpoints_not_signed_while_entries_are_added(doctor_env, db_url):
    """The sample's checkpoint_every_minutes is 5: entries left uncovered for more than 10
    minutes mean that no host signs."""
    key = with_signing_key(doctor_env)
    signer = signing.load_signer(key)

    def later(minutes: int) -> time_machine.travel:
        return time_machine.travel(
            dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes), tick=True
        )

    def checkpoints_check() -> dict:
        return doctor(doctor_env)[1]["checkpoints"]

    found = checkpoints_check()
    assert found["ok"] and found["detail"].startswith("none signed yet (the first entry is")
    with later(11):
        assert checkpoints_check()["detail"] == (
            "none signed for 11 minutes while entries were added: is the beat's host holding "
            "the signing key?"
        )
    with db.session_scope(db_url) as session:
        signed = checkpoints.sign_checkpoint(session, signer)
    with later(60):  # only the checkpoint's own entry since: nothing is waiting
        found = checkpoints_check()
    stamp = signed.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert found == {
        "name": "checkpoints",
        "ok": True,
        "detail": f"newest covers 1 entry, signed at {stamp}",
    }
    doctor_env.json("users", "add", "ana")
    with later(11):
        assert not checkpoints_check()["ok"]
    with db.session_scope(db_url) as session:
        checkpoints.sign_checkpoint(session, signer)
    with later(11):
        assert checkpoints_check()["detail"].startswith("newest covers 3 entries")
