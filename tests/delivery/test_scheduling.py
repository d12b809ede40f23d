"""Scheduling and expiry: `--send-at` and `--valid-until`, the `scheduled` state, the periodic
`dispatch_due`, cancel, and nothing sent after valid_until. The clock is moved in-process with
time-machine; the last test runs the real stack (workers with their beats, Redis, the sandbox)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select

from broadcaster.core import db
from broadcaster.core.models import Delivery, LedgerEntry, Message, WebAlert
from broadcaster.delivery import dispatch, expansion, scheduling
from broadcaster.delivery.celery_app import SEND
from tests.conftest import CARMEN_LOCKDOWN, compose_closure_command, submit_and_approve
from tests.console_client import body
from tests.delivery_stack import texts_by_phone, write_contacts
from tests.web.test_console import closure_form, state_of, submitted

ZONE = ZoneInfo("America/Los_Angeles")  # the sample district's time zone
START = dt.datetime(2026, 12, 14, 8, 0, tzinfo=ZONE)  # a Monday morning, PST
SEND_AT = "2026-12-14T09:30"
VALID_UNTIL = "2026-12-14T18:00"
FINISHED = ("sent", "partially_sent", "failed", "expired", "cancelled")


@pytest.fixture
def clock(run, tokens):
    """The users exist first; then the clock stands still at START until a test moves it."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def contacts(run, tmp_path) -> dict[str, str]:
    admin = run.json("users", "add", "it")["token"]
    expected = write_contacts(tmp_path / "contacts.csv", 5)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    return expected


@pytest.fixture
def scheduled(run, tokens, compose_closure):
    """Compose a closure to go out at SEND_AT and have it approved: it waits, scheduled."""

    def make(*extra: str) -> int:
        draft = compose_closure("--send-at", SEND_AT, "--valid-until", VALID_UNTIL, *extra)
        said = submit_and_approve(run, tokens, draft)
        assert "scheduled for 2026-12-14 09:30 PST" in said
        return draft["id"]

    return make


def deliveries(session_factory, message_id: int) -> int:
    with session_factory() as session:
        return session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.message_id == message_id)
        )


def events(session_factory, message_id: int, event: str) -> int:
    with session_factory() as session:
        return session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.message_id == message_id, LedgerEntry.event == event)
        )


def due(run, district) -> list[int]:
    """Run the periodic task's service function once, as a beat would; the delivery ids its
    commit handed the broker (the texts are written after it, by the expand task)."""
    settings = run.settings()
    with db.session_scope(settings.effective_database_url, settings=settings) as session:
        scheduling.dispatch_due(session, district, dt.datetime.now(dt.UTC))
    released = dispatch.released(session)
    assert released.warning is None  # the broker took them
    return [i for batch in released.batches if batch.task == SEND for i in batch.ids]


def written(session_factory) -> tuple[int, int]:
    """Messages and ledger entries: what a refused command must leave unchanged."""
    with session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(Message)),
            session.scalar(select(func.count()).select_from(LedgerEntry)),
        )


def state(run, message_id: int) -> str:
    return run.json("status", str(message_id))["state"]


def test_compose_shows_send_at_and_valid_until_in_district_time(
    run, tokens, clock, compose_closure
):
    draft = compose_closure("--send-at", SEND_AT, "--valid-until", VALID_UNTIL)
    assert draft["send_at"] == "2026-12-14T09:30:00-08:00"
    assert draft["send_at_local"] == "2026-12-14 09:30 PST"
    assert draft["valid_until_local"] == "2026-12-14 18:00 PST"
    shown = run("preview", str(draft["id"]))
    assert "Sends at: 2026-12-14 09:30 PST" in shown.stdout
    assert "Valid until: 2026-12-14 18:00 PST" in shown.stdout
    # Summer time has its own abbreviation.
    summer = compose_closure("--send-at", "2027-07-01T07:00")
    assert summer["send_at_local"] == "2027-07-01 07:00 PDT"


def test_approval_schedules_and_the_periodic_task_dispatches_once_after_the_time(
    run, tokens, contacts, clock, session_factory, district, scheduled
):
    message_id = scheduled()
    status = run.json("status", str(message_id))
    assert status["state"] == "scheduled" and status["send_at_local"] == "2026-12-14 09:30 PST"
    assert deliveries(session_factory, message_id) == 0  # the audience is not even frozen yet

    clock.move_to(dt.datetime(2026, 12, 14, 9, 29, 50, tzinfo=ZONE))
    assert due(run, district) == []
    assert state(run, message_id) == "scheduled"

    clock.move_to(dt.datetime(2026, 12, 14, 9, 30, 5, tzinfo=ZONE))
    first = due(run, district)
    assert due(run, district) == []  # a second beat finds nothing left to do
    assert state(run, message_id) == "dispatching"
    rows = deliveries(session_factory, message_id)
    # x, facebook, web released; the Spanish X reply waits for its tweet; the texts after them:
    assert sorted(first) and len(first) == rows - 1 == 3
    assert expansion.expand(run.settings(), district, [message_id]) == []
    assert deliveries(session_factory, message_id) == len(contacts) + 4
    assert events(session_factory, message_id, "message.dispatch") == 1


def test_concurrent_beats_dispatch_a_due_message_once(
    run, tokens, contacts, clock, session_factory, district, scheduled
):
    message_id = scheduled()
    clock.move_to(dt.datetime(2026, 12, 14, 9, 31, tzinfo=ZONE))
    start = threading.Barrier(2)
    taken: list[list[int]] = []

    def beat() -> None:
        start.wait()
        taken.append(due(run, district))

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One beat released the posts (all but the Spanish X reply, which waits for its tweet).
    assert sorted(len(ids) for ids in taken) == [0, deliveries(session_factory, message_id) - 1]
    assert events(session_factory, message_id, "message.dispatch") == 1


def test_cancel_stops_a_scheduled_message(run, tokens, clock, session_factory, district, scheduled):
    other = run.json("users", "add", "olga", "--role", "author")["token"]
    message_id = scheduled()
    assert run("cancel", str(message_id), "--as", "olga", token=other).exit_code == 2
    result = run("cancel", str(message_id), "--as", "ana", token=tokens["ana"])
    assert result.exit_code == 0 and "cancelled" in result.stdout
    clock.move_to(dt.datetime(2026, 12, 14, 9, 45, tzinfo=ZONE))
    assert due(run, district) == []
    assert state(run, message_id) == "cancelled"
    assert deliveries(session_factory, message_id) == 0


def test_a_scheduled_message_past_its_valid_until_expires_unsent_and_says_why(
    run, tokens, contacts, clock, session_factory, district, scheduled
):
    message_id = scheduled()
    clock.move_to(dt.datetime(2026, 12, 14, 18, 0, 1, tzinfo=ZONE))  # the beat was down all day
    assert due(run, district) == []
    assert state(run, message_id) == "expired"
    assert deliveries(session_factory, message_id) == 0
    shown = run.json("show", str(message_id))
    step = next(s for s in shown["timeline"] if s["event"] == "message.expire")
    assert step["details"]["reason"] == (
        "valid until 2026-12-14 18:00 PST passed before it could be sent "
        "(send at 2026-12-14 09:30 PST); nothing was sent"
    )


def test_the_incident_path_can_be_scheduled_too(run, tokens, clock, session_factory):
    result = run(
        "trigger",
        *CARMEN_LOCKDOWN,
        "--send-at",
        SEND_AT,
        "--yes",
        "--no-follow",
        token=tokens["carmen"],
    )
    assert result.exit_code == 0, result.output
    assert "scheduled for 2026-12-14 09:30 PST" in result.stdout
    message_id = run.json("list")[0]["id"]
    assert state(run, message_id) == "scheduled"
    assert deliveries(session_factory, message_id) == 0


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (
            ("--send-at", "2026-12-14T07:59"),
            "send at 2026-12-14T07:59 (America/Los_Angeles) is already past",
        ),
        (("--send-at", "tomorrow"), "send at 'tomorrow' is not a date and time"),
        (("--send-at", "2026-13-01T10:00"), "send at '2026-13-01T10:00' is not a date and time"),
        (
            ("--send-at", "2026-12-14T19:00", "--valid-until", VALID_UNTIL),
            "send at 2026-12-14T19:00 must be before valid until 2026-12-14T18:00",
        ),
        (("--valid-until", "2026-12-14T07:00"), "valid until 2026-12-14T07:00"),
    ],
)
def test_bad_times_are_refused_with_one_line_and_nothing_written(
    run, tokens, clock, session_factory, extra, says
):
    before = written(session_factory)
    result = run(*compose_closure_command(*extra), token=tokens["ana"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert written(session_factory) == before


def test_the_api_takes_send_at_and_answers_scheduled(serve, tokens):
    api = serve()
    tomorrow = dt.datetime.now(ZONE) + dt.timedelta(days=1)
    body = {
        "template": "school_closure",
        "variables": {"schools": "all", "date": "2026-03-03", "reason": "snow"},
        "channels": ["x", "web"],
        "send_at": tomorrow.strftime("%Y-%m-%dT%H:%M"),
    }
    draft = api("POST", "/messages", tokens["ana"], body).json()
    assert draft["send_at_local"] == tomorrow.strftime("%Y-%m-%d %H:%M %Z")
    api("POST", f"/messages/{draft['id']}/submit", tokens["ana"])
    approved = api(
        "POST", f"/messages/{draft['id']}/approve", tokens["ben"], {"ack_warnings": True}
    )
    assert approved.status_code == 200 and approved.json()["state"] == "scheduled"
    assert sum(n for by in approved.json()["deliveries"].values() for n in by.values()) == 0
    refused = api("POST", "/messages", tokens["ana"], {**body, "send_at": "soon"})
    assert refused.status_code == 422 and "send at 'soon'" in refused.json()["error"]


def test_the_console_schedules_shows_the_time_and_cancels(
    console,
    clock,
    session_factory,
):
    ana = console.signed_in("ana")
    refused = ana.client.post(
        "/console/compose", data=closure_form(ana, send_at="2026-12-14T07:00")
    )
    assert refused.status_code == 400  # shown beside the field, nothing saved
    assert 'aria-describedby="send-at-hint send-at-error" aria-invalid="true"' in body(refused)
    message_id = submitted(ana, send_at=SEND_AT, **{"reason.es": "una tormenta invernal"})
    ben = console.signed_in("ben")
    approved = ben.post(f"/console/messages/{message_id}/approve", follow_redirects=True)
    page = body(approved)
    assert "Approved: scheduled for 2026-12-14 09:30 PST." in page
    assert '<time datetime="2026-12-14T09:30:00-08:00" id="send-at">2026-12-14 09:30 PST' in page
    assert state_of(session_factory, message_id) == "scheduled"
    dashboard = body(ben.get("/console/"))
    assert f"Message {message_id}: School closure</a>\n        sends at" in dashboard
    assert '<time datetime="2026-12-14T09:30:00-08:00">2026-12-14 09:30 PST</time>' in dashboard
    ben.post(f"/console/messages/{message_id}/cancel")
    assert "Nothing is scheduled." in body(ben.get("/console/"))
    assert state_of(session_factory, message_id) == "cancelled"


def test_a_scheduled_message_goes_out_once_after_its_time(
    stack, run, tokens, contacts, session_factory, district, compose_closure
):
    run.env["BROADCASTER_SCHEDULE_EVERY"] = "1"
    now = dt.datetime.now(ZONE).replace(microsecond=0)
    send_at, valid_until = now + dt.timedelta(seconds=8), now + dt.timedelta(minutes=10)
    draft = compose_closure(
        "--send-at",
        send_at.replace(tzinfo=None).isoformat(),
        "--valid-until",
        valid_until.replace(tzinfo=None).isoformat(),
    )
    submit_and_approve(run, tokens, draft)
    assert state(run, draft["id"]) == "scheduled"
    stack.start_worker()  # two workers, each with its own beat
    stack.start_worker()
    deadline = time.monotonic() + 120
    while state(run, draft["id"]) not in FINISHED:
        assert time.monotonic() < deadline, run.json("status", str(draft["id"]))
        time.sleep(0.25)
    assert state(run, draft["id"]) == "sent"
    received = texts_by_phone(stack.sandbox)
    assert set(received) == set(contacts) and all(len(t) == 1 for t in received.values())
    assert len(stack.sandbox.posts("x")) == 2 and len(stack.sandbox.posts("facebook")) == 1
    with session_factory() as session:
        sent = session.scalars(select(Delivery.sent_at).where(Delivery.message_id == draft["id"]))
        assert min(sent) >= send_at  # nothing went out before its time
        alert = session.scalars(select(WebAlert)).one()
    # The web alert expires with the message.
    expires = alert.expires_at.replace(tzinfo=alert.expires_at.tzinfo or dt.UTC)
    assert valid_until <= expires < valid_until + dt.timedelta(seconds=1)
    assert events(session_factory, draft["id"], "message.dispatch") == 1
