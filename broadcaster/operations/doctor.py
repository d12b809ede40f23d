"""`broadcaster doctor`: is this deployment sound? One function per check, each returning a Check.

Checks that need the district file run only when it loads (its own check says why not).
Decisions:
- BROADCASTER_PUBLIC_URL is where Twilio posts status and inbound hooks. Unset is a problem only
  when an sms account sends through Twilio (it has credentials); set, it must be https and its
  /healthz must answer "ok" — proof that the address reaches this broadcaster's web app.
- A deployment with no live worker, or with no live worker running the beat (the sweep and the
  scheduled sends), is not sound: approved messages would wait.
- Sandbox-served accounts are information, unless real messages would need a sandbox that is not
  configured (BROADCASTER_SANDBOX_URL unset): then their deliveries fail.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import redis
import requests
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from broadcaster.authoring.catalog import Catalog
from broadcaster.core import db, sms_keywords
from broadcaster.core.config import DistrictConfig, Settings, load_district
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import utcnow
from broadcaster.core.wording import count
from broadcaster.delivery import embedded_redis, heartbeat, split_brain
from broadcaster.delivery.accounts import uses_sandbox
from broadcaster.delivery.celery_app import QUEUES

PROBE_TIMEOUT_S = 5.0
CLOCK_SKEW_S = 5.0  # leases, schedules and the ledger's times assume one clock, near enough


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Deployment:
    settings: Settings
    district: DistrictConfig | None = None  # set by check_district when the file loads
    database_ok: bool = False  # set by check_database: it answers, with the current schema

    @property
    def url(self) -> str:
        return self.settings.effective_database_url


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def broker_problem(url: str) -> str | None:
    """Why the broker does not answer a PING within PROBE_TIMEOUT_S, or None."""
    timeouts: dict[str, Any] = {
        "socket_connect_timeout": PROBE_TIMEOUT_S,
        "socket_timeout": PROBE_TIMEOUT_S,
    }
    try:
        if url.startswith("redis+socket://"):
            client = redis.Redis(unix_socket_path=urlsplit(url).path, **timeouts)
        else:
            client = redis.Redis.from_url(url, **timeouts)
        with client:
            client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {_first_line(exc)}"
    return None


@cache
def _probe_engine(url: str) -> Engine:
    """An engine that gives up within PROBE_TIMEOUT_S on a server that does not answer."""
    if url.startswith("sqlite"):  # a read takes no write lock, so waits for no writer
        return db.engine_for(url).execution_options(**{db.READ_ONLY: True})
    seconds = int(PROBE_TIMEOUT_S)
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": seconds, "options": f"-c statement_timeout={seconds}s"},
    )


def database_problem(url: str) -> str | None:
    """Why the database does not answer a query within PROBE_TIMEOUT_S, or None."""
    try:
        with _probe_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return f"{type(exc).__name__}: {_first_line(getattr(exc, 'orig', None) or exc)}"
    return None


# --- the checks -------------------------------------------------------------------------------


def check_district(target: Deployment) -> Check:
    path = target.settings.config_path
    try:
        target.district = load_district(path)
    except BroadcasterError as exc:
        return Check("district", False, str(exc))
    accounts = len(target.district.accounts)
    return Check("district", True, f"{path} loads ({count(accounts, 'account')})")


def check_database(target: Deployment) -> Check:
    shown = heartbeat.mask_url(target.url)
    if target.settings.is_embedded and db.current_revision_or_none(target.url) is None:
        made_by = "start `broadcaster worker`, which makes it"
        return Check("database", False, f"{shown}: not created yet: {made_by}")
    try:
        current = db.current_revision(target.url)
    except BroadcasterError as exc:
        return Check("database", False, f"{shown}: {exc}")
    head = db.head_revision()
    if current != head and not target.settings.is_embedded:
        return Check(
            "database",
            False,
            f"{shown} is at schema {current or 'none'}, this version needs {head}: "
            "run `broadcaster db upgrade`",
        )
    target.database_ok = current == head  # an embedded one migrates at its next use
    embedded = " (migrates itself when next used)" if current != head else ""
    return Check("database", True, f"{shown} answers, schema {current}{embedded}")


def check_clock(target: Deployment) -> Check:
    try:
        with db.engine_for(target.url).connect() as connection:
            before = utcnow()
            theirs = connection.execute(text("SELECT CURRENT_TIMESTAMP")).scalar_one()
            after = utcnow()
    except SQLAlchemyError as exc:
        return Check("clock", False, f"cannot read the database's clock: {_first_line(exc)}")
    if isinstance(theirs, str):  # SQLite: UTC text, whole seconds
        theirs = dt.datetime.fromisoformat(theirs).replace(tzinfo=dt.UTC)
    skew = (before + (after - before) / 2 - theirs).total_seconds()
    if abs(skew) > CLOCK_SKEW_S:
        ahead = "ahead of" if skew > 0 else "behind"
        return Check(
            "clock",
            False,
            f"this host's clock is {abs(skew):.1f} s {ahead} the database's (more than "
            f"{CLOCK_SKEW_S:.0f} s): synchronize both with NTP",
        )
    return Check("clock", True, f"within {abs(skew):.1f} s of the database's")


def check_broker(target: Deployment) -> Check:
    configured = target.settings.broker_url
    if not configured:
        home = target.settings.home
        state = "running" if embedded_redis.is_running(home) else "started when first needed"
        return Check("broker", True, f"the embedded Redis in {home} ({state})")
    shown = heartbeat.mask_url(configured)
    found = broker_problem(configured)
    if found:
        return Check("broker", False, f"{shown} does not answer: {found}")
    return Check("broker", True, f"{shown} answers")


def check_split_brain(target: Deployment) -> Check:
    found = split_brain.problem(target.settings)
    if found:
        return Check("one broker", False, found)
    mine = split_brain.configured_broker(target.settings).display
    if not split_brain.live_brokers(target.url):
        return Check("one broker", True, f"no live worker yet; this host's broker is {mine}")
    return Check("one broker", True, f"the live workers use this host's broker ({mine})")


def check_workers(target: Deployment) -> Check:
    try:
        with db.read_scope(target.url) as session:
            live = heartbeat.live(session)
            rows = [(w.hostname, w.pid, w.queues.split(","), w.beat) for w in live]
    except SQLAlchemyError as exc:
        return Check("workers", False, f"cannot read the heartbeats: {_first_line(exc)}")
    if not rows:
        return Check(
            "workers",
            False,
            f"no worker has reported in the last {heartbeat.gone_after_s():.0f} s: "
            "start `broadcaster worker` (approved messages wait until one runs)",
        )
    served = {queue for *_, queues, _beat in rows for queue in queues}
    unserved = [queue for queue in QUEUES if queue not in served]
    listed = "; ".join(f"{host} pid {pid} ({','.join(queues)})" for host, pid, queues, _ in rows)
    if unserved:
        return Check(
            "workers",
            False,
            f"no live worker consumes {', '.join(unserved)}: start `broadcaster worker --queues "
            f"{','.join(unserved)}` (live: {listed})",
        )
    beats = [f"{host} pid {pid}" for host, pid, _queues, beat in rows if beat]
    if not beats:
        return Check(
            "workers",
            False,
            "no live worker runs the beat (the sweep and scheduled sends): start one worker "
            f"with --beat (live: {listed})",
        )
    running = f"{count(len(rows), 'worker')} live"
    return Check("workers", True, f"{running}: {listed}; beat on {', '.join(beats)}")


def check_credentials(target: Deployment, district: DistrictConfig) -> Check:
    missing = [
        f"account {account.name}: {variable}"
        for account in district.accounts
        for variable in account.credentials_env.values()
        if not os.environ.get(variable)
    ]
    if missing:
        return Check("credentials", False, "unset: " + "; ".join(missing))
    real = [a.name for a in district.accounts if a.credentials_env]
    if not real:
        return Check("credentials", True, "no account has credentials (all sandbox-served)")
    return Check("credentials", True, f"every variable is set for {', '.join(real)}")


def check_roster(target: Deployment, district: DistrictConfig) -> Check:
    if not district.policy.roster:
        return Check("roster", True, "none configured (students' names are not checked)")
    try:
        students = len(district.roster)
    except BroadcasterError as exc:
        return Check("roster", False, str(exc))
    return Check("roster", True, f"{students} students")


def check_templates(target: Deployment, district: DistrictConfig) -> Check:
    unreadable = [
        str(folder)
        for folder in district.template_dirs
        if not (folder.is_dir() and os.access(folder, os.R_OK | os.X_OK))
    ]
    if unreadable:
        return Check(
            "templates", False, f"not a readable folder: {', '.join(unreadable)} (templates_dirs)"
        )
    try:
        templates = Catalog(district).all()
    except (BroadcasterError, OSError) as exc:
        return Check("templates", False, _first_line(exc))
    # Drafts are a warning, not a failure: they are sent, and the preview says so too.
    files = {
        locale: sum(len(t.unreviewed(locale)) for t in templates)
        for locale in district.district.locales
    }
    counted = [f"{locale} {n} file{'s' if n != 1 else ''}" for locale, n in files.items() if n]
    unsigned = (
        f"; translations not yet reviewed ([reviewed] false in meta.toml): {', '.join(counted)}"
        if counted
        else ""
    )
    drafts = sms_keywords.unreviewed()
    if drafts:
        unsigned += f"; replies to STOP, START and HELP not yet reviewed: {', '.join(drafts)}"
    return Check("templates", True, f"{count(len(templates), 'template')}{unsigned}")


def check_public_site(target: Deployment, district: DistrictConfig) -> Check:
    """The folder the public site is published into: this host's workers write it on every
    change to the alerts, so a folder they cannot write leaves the site showing old alerts."""
    folder = district.site_dir
    if folder is None:
        return Check("public site", True, "not published as files ([web] publish_dir unset)")
    # The folder, or where it will be made: the nearest part of its path that exists.
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return Check(
            "public site", False, f"{existing} is not a folder, so {folder} cannot be published"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        return Check(
            "public site",
            False,
            f"{existing} is not writable by this user, so {folder} cannot be published",
        )
    made = "" if existing == folder else " (made on the first publish)"
    return Check("public site", True, f"{folder} is writable{made}")


def check_public_url(target: Deployment, district: DistrictConfig) -> Check:
    url = target.settings.public_url
    twilio = [a.name for a in district.accounts_for("sms") if not uses_sandbox(a, "live")]
    if not url:
        if twilio:
            return Check(
                "public url",
                False,
                f"BROADCASTER_PUBLIC_URL is unset, but {', '.join(twilio)} sends through Twilio, "
                "which posts delivery status to it: set it to this broadcaster's https address",
            )
        return Check("public url", True, "unset (needed only when an sms account uses Twilio)")
    if not (urlsplit(url).scheme == "https" and urlsplit(url).hostname):
        return Check("public url", False, f"{url} is not https: Twilio's hooks need an https URL")
    probe = url.rstrip("/") + "/healthz"
    try:
        response = requests.get(probe, timeout=PROBE_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as exc:
        return Check("public url", False, f"{probe} does not answer: {type(exc).__name__}")
    if response.status_code != 200 or response.text.strip() != "ok":
        return Check(
            "public url",
            False,
            f"{probe} answered {response.status_code}, not this broadcaster's ok: "
            "does the address reach the web app?",
        )
    return Check("public url", True, f"{url} answers")


def check_sandbox(target: Deployment, district: DistrictConfig) -> Check:
    served = [a.name for a in district.accounts if uses_sandbox(a, "live")]
    if not served:
        return Check("sandbox", True, "no account is sandbox-served")
    # Accounts on the test allowlist carry only rehearsals; the others carry real alerts.
    live = [name for name in served if name not in district.test_allowlist.accounts]
    if live and not target.settings.sandbox_url:
        return Check(
            "sandbox",
            False,
            f"{', '.join(live)} have no credentials, so the provider sandbox serves their "
            "alerts, but BROADCASTER_SANDBOX_URL is unset: give them credentials_env, or set it",
        )
    return Check("sandbox", True, f"sandbox-served (no credentials_env): {', '.join(served)}")


def check_signing_key(target: Deployment, district: DistrictConfig) -> Check:
    """The key that signs the ledger's checkpoints (records/signing.py). Only the hosts that
    sign hold it (the beat's worker, which takes the checkpoint task on the default queue, and
    the web app, which signs exports): missing here is sound, and check_checkpoints notices
    when no host signs. A file that is here must be a key, readable by its owner only."""
    from broadcaster.records import signing

    path = district.signing_key_path
    if path is None:
        return Check(
            "signing key",
            True,
            "none: the ledger's checkpoints are not signed (set [records] signing_key in the "
            "district file and run `broadcaster records keygen`)",
        )
    try:
        os.lstat(path)  # not followed: load_signer refuses a link
    except FileNotFoundError:
        return Check(
            "signing key",
            True,
            f"{path} is not on this host: only the hosts that sign (the beat's worker on the "
            "default queue, the web app for exports) need it; run doctor there",
        )
    except OSError:
        pass  # load_signer says why it cannot be read
    try:
        signer = signing.load_signer(district)
    except BroadcasterError as exc:
        return Check("signing key", False, str(exc))
    return Check("signing key", True, f"key {signer.key_id} in {path}")


def check_checkpoints(target: Deployment, district: DistrictConfig) -> Check:
    """With a key configured, no ledger entry waits for a checkpoint longer than two beat
    periods (`[records] checkpoint_every_minutes`): one that does means no host is signing. Two
    index probes (the newest checkpoint by its size, the first entry after it), however long
    the ledger."""
    from broadcaster.records import checkpoints

    if district.signing_key_path is None:
        return Check("checkpoints", True, "none: no signing key is configured")
    try:
        with db.read_scope(target.url) as session:
            newest = checkpoints.latest(session)
            waiting = checkpoints.first_uncovered(session, newest.size if newest else 0)
    except SQLAlchemyError as exc:
        return Check("checkpoints", False, f"cannot read the ledger: {_first_line(exc)}")
    waited = utcnow() - waiting if waiting else dt.timedelta(0)
    minutes = count(int(waited.total_seconds() // 60), "minute")
    if waited > dt.timedelta(minutes=2 * district.records.checkpoint_every_minutes):
        return Check(
            "checkpoints",
            False,
            f"none signed for {minutes} while entries were added: is the beat's host holding "
            "the signing key?",
        )
    if newest is None:
        added = "the ledger is empty" if waiting is None else f"the first entry is {minutes} old"
        return Check("checkpoints", True, f"none signed yet ({added})")
    signed_at = newest.signed_at.strftime(checkpoints.TIME_FORMAT)
    return Check(
        "checkpoints",
        True,
        f"newest covers {count(newest.size, 'entry', 'entries')}, signed at {signed_at}",
    )


CHECKS: tuple[Callable[[Deployment], Check], ...] = (
    check_district,
    check_database,
    check_broker,
    check_split_brain,
)
DATABASE_CHECKS: tuple[Callable[[Deployment], Check], ...] = (check_clock, check_workers)
DISTRICT_CHECKS: tuple[Callable[[Deployment, DistrictConfig], Check], ...] = (
    check_credentials,
    check_roster,
    check_templates,
    check_public_site,
    check_public_url,
    check_sandbox,
    check_signing_key,
)
# Those that need the district and a database that answers.
LEDGER_CHECKS: tuple[Callable[[Deployment, DistrictConfig], Check], ...] = (check_checkpoints,)


# Not run by a process that is starting: it refuses a split brain itself (split_brain.py), is
# not yet a live worker, does not yet serve its public URL, and may be the beat that signs the
# checkpoints still due.
NOT_AT_START: frozenset[Callable[..., Check]] = frozenset(
    {check_split_brain, check_workers, check_public_url, check_checkpoints}
)


def run(settings: Settings, at_start: bool = False) -> list[Check]:
    """Every check, in order; those that need the database or the district only when the
    database answers with the current schema and the district file loads."""
    target = Deployment(settings)
    skipped = NOT_AT_START if at_start else frozenset()
    found = [check(target) for check in CHECKS if check not in skipped]
    if target.database_ok:
        found += [check(target) for check in DATABASE_CHECKS if check not in skipped]
    if target.district is not None:
        district = target.district
        found += [check(target, district) for check in DISTRICT_CHECKS if check not in skipped]
        if target.database_ok:
            found += [check(target, district) for check in LEDGER_CHECKS if check not in skipped]
    return found


def check_at_start(settings: Settings, warn: Callable[[str], object]) -> None:
    """What the worker (with its beat) and the web app run before they start: refuse a split
    brain (Refused, exit 2 on the command line); warn about anything else doctor would report."""
    split_brain.refuse_split(settings)
    for check in run(settings, at_start=True):
        if not check.ok:
            warn(f"doctor: {check.name}: {check.detail}")


def report(checks: list[Check]) -> dict[str, object]:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}
