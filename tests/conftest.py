"""Shared fixtures: a real SQLite file and a real PostgreSQL database per test, and a CLI runner.

PostgreSQL tests use 127.0.0.1:5432 (override with BROADCASTER_TEST_PG). When it does not answer
they are skipped on a developer machine and fail under CI=true, so CI never passes by skipping.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher, profiles
from click.testing import CliRunner, Result
from sqlalchemy import insert

from broadcaster.authoring.catalog import Catalog
from broadcaster.cli.main import cli
from broadcaster.core import db, identity
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT, Settings, load_district
from broadcaster.core.contacts_csv import parse_csv
from broadcaster.core.models import Contact
from broadcaster.delivery import embedded_redis

# Fixtures that live beside the helpers they use, shared by every test package: the staff
# console, the delivery stack, the public site, the web app on a loopback port and its API.
pytest_plugins = [
    "tests.console_client",
    "tests.delivery_stack",
    "tests.public_site",
    "tests.web_server",
    "tests.api_client",
    "tests.signed_ledger",
]

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PG_SERVER = os.environ.get("BROADCASTER_TEST_PG", "postgresql://root@127.0.0.1:5432")
IN_CI = os.environ.get("CI", "").lower() == "true"

# Real argon2, at its cheapest cost: the suite issues and checks thousands of tokens and passwords
# in-process, ~0.1 s each at the production cost. Hashes carry their own parameters, so processes
# the tests start (web apps, workers) verify them all the same. test_passwords.py checks that the
# application itself hashes at the production cost.
identity._hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
identity._DUMMY_HASH = identity._hasher.hash("not-a-password")


def _service_missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is not reachable and CI=true: tests must not skip a missing service")
    pytest.skip(f"{what} is not reachable")


@pytest.fixture
def district():
    return load_district(SAMPLE_CONFIG)


@pytest.fixture
def catalog(district):
    return Catalog(district)


# Fixtures that start real `broadcaster worker` processes against the test's database.
WORKER_FIXTURES = frozenset({"stack", "production"})


def pytest_collection_modifyitems(config, items) -> None:
    """Tests with real workers run on PostgreSQL, the production database, and not again on
    SQLite, unless marked `both_databases` (the crash and fan-out guarantees of the embedded
    install): their SQL is the same code the shorter tests run on both, and a worker test is
    seconds of the suite's time where the rest are tenths. The `slow` tests go first."""
    kept, dropped = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        on_sqlite = spec is not None and spec.params.get("db_url") == "sqlite"
        with_workers = WORKER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if on_sqlite and with_workers and item.get_closest_marker("both_databases") is None:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # The long end-to-end tests first: xdist hands tests out in this order, so none of them is
    # left running alone at the end while the other process has nothing to do.
    items[:] = sorted(kept, key=lambda item: item.get_closest_marker("slow") is None)


# The long end-to-end runs (faults, crashes, pacing, recalls) on the production database only:
# each takes a minute of the suite's ~12, and the SQLite path they share (claims, the sweep,
# outcomes) is covered by the shorter tests and by the killed-worker test, which runs on both.
ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        _service_missing(f"PostgreSQL at {PG_SERVER}")
        raise


def _pg_url(name: str) -> str:
    return f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://')}/{name}"


# Each test's database is a copy of one this process migrated with the real `db.upgrade`:
# copying takes a tenth of the time migrating does, and the suite makes a database per test.
@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "broadcaster.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    db.engine_for(url).dispose()
    return path


@pytest.fixture(scope="session")
def migrated_postgresql() -> Iterator[str]:
    """The name of a migrated database that tests' databases are created from (a template
    must have no connections while it is copied, so nothing else opens it)."""
    name = f"bc_template_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db.upgrade(_pg_url(name))
    db.engine_for(_pg_url(name)).dispose()
    yield name
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    """A new, migrated database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "broadcaster.db"
        shutil.copy2(request.getfixturevalue("migrated_sqlite"), path)
        url = f"sqlite:///{path}"
        yield url
        db.engine_for(url).dispose()
        return
    template = request.getfixturevalue("migrated_postgresql")
    name = f"bc_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = _pg_url(name)
    yield url
    db.engine_for(url).dispose()
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def session_factory(db_url):
    def make():
        return db.session_scope(db_url)

    return make


@dataclass
class Cli:
    """Runs the real `broadcaster` command in-process with this test's environment."""

    env: dict[str, str]

    def __call__(self, *args: str, token: str | None = None, input: str | None = None) -> Result:
        env = dict(self.env)
        if token is not None:
            env["BROADCASTER_TOKEN"] = token
        return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)

    def json(self, *args: str, token: str | None = None) -> object:
        result = self(*args, "--json", token=token)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def settings(self) -> Settings:
        """The Settings a command sees, for calling a service as a command or a worker would."""
        fields = {k.removeprefix("BROADCASTER_").lower(): v for k, v in self.env.items() if v}
        return Settings(**{k: v for k, v in fields.items() if k in Settings.model_fields})


@pytest.fixture
def run(db_url, tmp_path) -> Iterator[Cli]:
    """The CLI on this test's database. On SQLite, without a broker configured, approving
    starts the embedded Redis in the test's home; it is stopped afterwards. A server database
    comes with a server broker, as deployed (the web app and workers refuse the embedded one
    there: split_brain.py): the test Redis, whose database the delivery stack empties."""
    from tests.delivery_stack import REDIS_DB, REDIS_SERVER

    home = tmp_path / "home"
    env = {"BROADCASTER_HOME": str(home), "BROADCASTER_TOKEN": ""}
    env["BROADCASTER_DATABASE_URL"] = db_url
    if not db_url.startswith("sqlite"):
        env["BROADCASTER_BROKER_URL"] = f"{REDIS_SERVER}/{REDIS_DB}"
    yield Cli(env)
    embedded_redis.stop(home)


@pytest.fixture
def families(run, district) -> None:
    """The sample district's families (its contacts.csv, opted-out rows left out), as a district
    has them before it texts anyone: an SMS audience matching no phone is refused. A test's own
    `contacts import` replaces them."""
    text = (SAMPLE_DISTRICT / "contacts.csv").read_text(encoding="utf-8")
    parsed = parse_csv(io.StringIO(text, newline=""), district, "contacts.csv")
    rows = [row for row, opted_out in parsed if not opted_out]
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        session.execute(insert(Contact), rows)


@pytest.fixture
def tokens(run, families) -> dict[str, str]:
    """The sample district's users (roles from the sample district file), with their tokens."""
    return {
        name: run.json("users", "add", name)["token"] for name in ("ana", "ben", "carmen", "dev")
    }


def closure_vars(
    reason: str, reason_es: str | None = None, audience: str | None = "all"
) -> tuple[str, ...]:
    """--var options for a closure of all schools with this reason (and the audience texted;
    None for a message that texts nobody)."""
    extra = ("--var", f"reason.es={reason_es}") if reason_es else ()
    return (
        "--var",
        "schools=all",
        "--var",
        "date=2026-03-03",
        "--var",
        f"reason={reason}",
        *extra,
        *(("--audience", audience) if audience else ()),
    )


CLOSURE_VARS = (
    "--var",
    "schools=lincoln-hs,jefferson-es",
    "--var",
    "date=2026-03-03",
    "--var",
    "reason=a winter storm",
    "--var",
    "reason.es=una tormenta invernal",
)


# carmen, the incident commander, on the pre-approved lockdown of Lincoln High School: the
# arguments after `compose` or `trigger` (with token=tokens["carmen"]).
CARMEN_LOCKDOWN = (
    "lockdown",
    "--as",
    "carmen",
    "--var",
    "school=lincoln-hs",
    "--audience",
    "school:lincoln-hs",
)


def submit_and_approve(run: Cli, tokens: dict[str, str], draft: dict) -> str:
    """ana submits, ben approves (acknowledging any warnings): the approval dispatches (or
    schedules). Returns what `approve` said."""
    mid = str(draft["id"])
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    result = run("approve", mid, "--as", "ben", "--ack-warnings", token=tokens["ben"])
    assert result.exit_code == 0, result.output
    return result.stdout


def compose_closure_command(
    *extra: str, as_user: str = "ana", audience: str | None = "all"
) -> tuple[str, ...]:
    """`compose` of the closure in CLOSURE_VARS by as_user, texting audience (None: nobody)."""
    chosen = ("--audience", audience) if audience else ()
    return ("compose", "school_closure", "--as", as_user, *CLOSURE_VARS, *chosen, *extra)


@pytest.fixture
def compose_closure(run, tokens):
    """Compose the closure (compose_closure_command); returns the draft as `compose` prints it."""

    def compose(*extra: str, as_user: str = "ana", audience: str | None = "all") -> dict:
        command = compose_closure_command(*extra, as_user=as_user, audience=audience)
        return run.json(*command, token=tokens[as_user])

    return compose
