"""`broadcaster demo`: the whole flow on one machine with nothing configured.

A fresh home in a temporary folder; SQLite; the embedded Redis; the provider sandbox in this
process; one worker in a child process. Users and contacts come from the sample district; a closure
notice is composed by one user, approved by another and delivered on every channel (X, Facebook,
texts, calls, e-mails, the staff chat rooms and the web site). It prints the timeline, what each
platform received (what a call said, an e-mail's subject in which language, a staff room's post)
and the ledger check, then stops what it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text
from sqlalchemy import select

from broadcaster.authoring import messages
from broadcaster.authoring.catalog import Catalog
from broadcaster.core import db, identity, ledger
from broadcaster.core.config import SAMPLE_DISTRICT, Settings, load_district
from broadcaster.core.contacts import import_csv
from broadcaster.core.models import Delivery, Message
from broadcaster.core.wording import count
from broadcaster.delivery import dispatch, embedded_redis
from broadcaster.delivery.views import Status, status_view

if TYPE_CHECKING:
    from provider_sandbox import Sandbox

CONTACTS = SAMPLE_DISTRICT / "contacts.csv"
# Every channel the sample district has an account for: the template's four, calls, e-mails
# (these once the sample contacts have an `email` column: see channels()) and staff chat rooms.
CHANNELS = ("x", "facebook", "sms", "voice", "email", "apprise", "web")
TIMEOUT_S = 120


def run_demo(verbose: bool = False) -> int:
    from provider_sandbox import Sandbox

    out = Console(highlight=False, soft_wrap=True)
    home = Path(tempfile.mkdtemp(prefix="broadcaster-demo-"))
    for name in ("BROADCASTER_CONFIG", "BROADCASTER_DATABASE_URL", "BROADCASTER_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ["BROADCASTER_HOME"] = str(home)
    sandbox = Sandbox(port=0)
    sandbox.start()
    os.environ["BROADCASTER_SANDBOX_URL"] = sandbox.url
    settings = Settings()
    worker = None
    try:
        out.print(Text(f"home {home}; provider sandbox {sandbox.url}", "dim"))
        embedded_redis.ensure_running(home)
        db.prepare(settings.effective_database_url, embedded=True)
        worker = subprocess.Popen(  # noqa: S603 (this interpreter; arguments are our own)
            [
                sys.executable,
                "-m",
                "broadcaster",
                "worker",
                "--concurrency",
                "8",
                "--loglevel",
                "warning",
                "--verbose" if verbose else "--quiet",
            ],
            env=os.environ.copy(),
            # Quiet, Celery's own lines (the banner, "Warm shutdown") go nowhere; its log and
            # errors are on stderr.
            stdout=None if verbose else subprocess.DEVNULL,
        )
        message_id = _author_and_approve(settings, out)
        view = _wait(settings, message_id)
        _report(settings, sandbox, message_id, view, out)
        with db.read_scope(settings.effective_database_url, snapshot=True) as session:
            verified = ledger.verify(session)
        verdict = "intact" if verified.ok else "BROKEN"
        out.print(
            Text(
                f"records verify: {verdict}, {count(verified.entries, 'entry', 'entries')}",
                "bold green" if verified.ok else "bold red",
            )
        )
        return 0 if verified.ok and view.state == "sent" else 1
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        embedded_redis.stop(home)
        sandbox.stop()


def channels() -> tuple[str, ...]:
    """The demo's channels: e-mail only when the sample contacts give addresses (their `email`
    column), or the message would e-mail nobody."""
    with CONTACTS.open(encoding="utf-8-sig") as handle:
        header = handle.readline().strip().lower().split(",")
    return tuple(c for c in CHANNELS if c != "email" or "email" in header)


def _author_and_approve(settings: Settings, out: Console) -> int:
    district = load_district(settings.config_path)
    url = settings.effective_database_url
    with db.session_scope(url, settings=settings) as session:
        users = {
            name: identity.add_user(session, district, name, [], None)[0]
            for name in ("ana", "ben", "it")
        }
        result = import_csv(session, district, CONTACTS, users["it"])
        out.print(
            f"contacts: {count(result.rows, 'row')}, {count(result.phones, 'phone number')}, "
            f"{result.opted_out} opted out"
        )
        message = messages.compose(
            session,
            district,
            Catalog(district),
            users["ana"],
            messages.Request(
                template="school_closure",
                values={
                    "schools": "all",
                    "date": "2026-03-03",
                    "reason": "a winter storm",
                    "reason.es": "una tormenta invernal",
                },
                channels=list(channels()),
                audience="all",
            ),
        )
        out.print(
            f"ana composed message {message.id} (school_closure, en + es, {', '.join(channels())})"
        )
        messages.submit(session, district, message, users["ana"])
        messages.approve_and_dispatch(session, district, message, users["ben"])
        message_id = message.id
    done = dispatch.released(session)
    if done.warning:
        out.print(f"warning: {done.warning}")
    texts = ", and a worker writes its texts" if done.expanding else ""
    out.print(f"ben approved it: {done.total} web and social deliveries queued{texts}")
    return message_id


def _wait(settings: Settings, message_id: int) -> Status:
    district = load_district(settings.config_path)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        with db.session_scope(settings.effective_database_url) as session:
            message = session.get(Message, message_id)
            view = status_view(session, message, district)  # type: ignore[arg-type]  # made above
        if not view.in_progress() or time.monotonic() > deadline:
            return view
        time.sleep(0.2)


def _report(
    settings: Settings, sandbox: Sandbox, message_id: int, view: Status, out: Console
) -> None:
    with db.session_scope(settings.effective_database_url) as session:
        timeline = ledger.entries_for(session, message_id)
    start = timeline[0][0].created_at
    out.rule("timeline")
    for entry, _payload in timeline:
        if entry.event.startswith(("message.", "approval.", "dispatch.")) or entry.event in (
            "delivery.sent",
            "delivery.failed",
        ):
            at, who = _ms(start, entry.created_at), entry.actor or "worker"
            out.print(Text(f"{at:>8} ms  {entry.event:<22} {who}"))
    out.rule("what each platform received")
    # Lines, not a table: a piped demo (a CI log) keeps every example whole.
    received = []
    for provider in ("x", "facebook", "twilio"):
        posts = [r for r in sandbox.requests(provider) if r["method"] == "POST"]
        received.append((provider, len(posts), _text_of(posts[0]) if posts else ""))
    calls = sandbox.posts("voice")
    if calls:
        said = calls[0]["said"][0]
        received.append(("twilio calls", len(calls), f"[{said['language']}] {said['text']}"))
    emails = sandbox.smtp_messages()
    if emails:
        first = emails[0]
        language = _language(settings, message_id, first)
        received.append(("e-mail (SMTP)", len(emails), f"[{language}] {first['subject']}"))
    rooms = sandbox.posts("staff")
    if rooms:
        example = f"[{rooms[0]['room']}] {rooms[0]['title']}"
        received.append(("staff chat (Apprise)", len(rooms), example))
    for platform, times, example in received:
        out.print(Text(f"{platform:<20} {times:>4}  {' '.join(example.split())[:90]}"))
    published = view.deliveries.get("web", {}).get("sent", 0)
    out.print(f"web alert store: {count(published, 'alert')} published")
    out.print(Text(f"message {message_id} is {view.state}", "bold"))


def _language(settings: Settings, message_id: int, email: dict) -> str:
    """The language of the delivery that sent this e-mail (found by its Message-ID)."""
    with db.session_scope(settings.effective_database_url) as session:
        locale = session.scalar(
            select(Delivery.locale).where(
                Delivery.message_id == message_id, Delivery.provider_id == email["message_id"]
            )
        )
    return locale or "?"


def _text_of(request: dict) -> str:
    body = request.get("body") or {}
    return str(body.get("text") or body.get("message") or body.get("Body") or "")


def _ms(start: str, at: str) -> int:
    return int((datetime.fromisoformat(at) - datetime.fromisoformat(start)).total_seconds() * 1000)
