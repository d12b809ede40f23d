"""Quiet hours (issue 14, item 6): a routine message approved at night posts at once and holds its
texts and calls until the quiet window ends; emergencies, pre-approved incident templates and an
approver's override with a reason do not wait.

The clock is controlled through the district file: its `[quiet_hours]` window is set around the
real time of the test (so "now" is in quiet hours whenever the test runs), and the end of the
night is played by handing `release_due` a later moment, or by moving the held rows' time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from broadcaster.core import db, ledger
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT, load_district
from broadcaster.core.models import Delivery, Message, utcnow
from broadcaster.delivery import expansion, jobs, quiet_release
from broadcaster.delivery.dispatch import batches
from tests.conftest import ON_POSTGRESQL

ZONE = ZoneInfo("America/Los_Angeles")  # the sample district's
EVENT = (
    "event_cancellation",
    "--var", "event=the spring concert",
    "--var", "school=lincoln-hs",
    "--var", "date=2026-05-14",
    "--var", "reason=a power outage",
    "--channels", "sms,voice,email,web",
    "--audience", "all",
)  # fmt: skip


def quiet_now(run, tmp_path: Path) -> dt.datetime:
    """The sample district with quiet hours from an hour ago to two hours ahead (district
    time); returns when they end (UTC)."""
    local = dt.datetime.now(ZONE).replace(second=0, microsecond=0)
    start, end = local - dt.timedelta(hours=1), local + dt.timedelta(hours=2)
    text = SAMPLE_CONFIG.read_text(encoding="utf-8").replace(
        'roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"'
    )
    text += f'\n[quiet_hours]\nstart = "{start:%H:%M}"\nend = "{end:%H:%M}"\n'
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)
    return end.astimezone(dt.UTC)


def compose(run, tokens, *extra: str) -> int:
    draft = run.json("compose", *EVENT, "--as", "ana", *extra, token=tokens["ana"])
    return int(draft["id"])


def approve(run, tokens, mid: int, *extra: str):
    assert run("submit", str(mid), "--as", "ana", token=tokens["ana"]).exit_code == 0
    return run("approve", str(mid), "--as", "ben", "--ack-warnings", *extra, token=tokens["ben"])


def rows(session, mid: int) -> dict[str, list[Delivery]]:
    out: dict[str, list[Delivery]] = {}
    for row in session.scalars(select(Delivery).where(Delivery.message_id == mid)):
        out.setdefault(row.channel, []).append(row)
    return out


def events(session, mid: int) -> dict[str, dict | None]:
    return {e.event: payload for e, payload in ledger.entries_for(session, mid)}


def test_a_routine_message_at_night_posts_now_and_texts_and_calls_when_quiet_hours_end(
    run, tokens, families, tmp_path, session_factory
):
    ends = quiet_now(run, tmp_path)
    district = load_district(Path(run.env["BROADCASTER_CONFIG"]))
    mid = compose(run, tokens)
    # The planner shows it: the texts and calls start when quiet hours end, the rest now.
    plan = run.json("preview", str(mid))["plan"]
    assert dt.datetime.fromisoformat(plan["sms"]["waits_until"]) == ends
    assert dt.datetime.fromisoformat(plan["voice"]["waits_until"]) == ends
    assert dt.datetime.fromisoformat(plan["sms"]["last_accepted_at"]) >= ends
    assert "waits_until" not in plan["web"] and "waits_until" not in plan["email"]
    result = approve(run, tokens, mid)
    assert result.exit_code == 0, result.output
    assert expansion.expand(run.settings(), district, [mid]) == []
    with session_factory() as session:
        message = session.get(Message, mid)
        assert message.quiet_until == ends
        assert events(session, mid)["dispatch.quiet_hours"] == {
            "held": ["sms", "voice"],
            "until": ends.isoformat(),
        }
        written = rows(session, mid)
        held = written["sms"] + written["voice"]
        assert held and all(r.next_attempt_at == ends for r in held)
        assert all(r.next_attempt_at is None for r in written["email"] + written["web"])
        # No task for them, and no worker could claim them before the end.
        assert batches(message, [(r.id, r.channel) for r in held]) == []
        assert jobs.claim(session, [r.id for r in held], 60) == []
        sent_now = batches(message, [(r.id, r.channel) for r in written["email"]])
        assert sum(len(b.ids) for b in sent_now) == len(written["email"])

    url, settings = run.env["BROADCASTER_DATABASE_URL"], run.settings()
    with db.session_scope(url, settings=settings) as session:
        assert quiet_release.release_due(session, ends - dt.timedelta(seconds=1)) == []
    with db.session_scope(url, settings=settings) as session:  # enqueues once committed
        released = quiet_release.release_due(session, ends)
    assert sorted(i for b in released for i in b.ids) == sorted(r.id for r in held)
    with session_factory() as session:
        assert session.get(Message, mid).quiet_until is None
        assert events(session, mid)["dispatch.quiet_hours_ended"] == {"released": len(held)}
    with db.session_scope(url, settings=settings) as session:  # once: never released twice
        assert quiet_release.release_due(session, ends + dt.timedelta(hours=1)) == []


def test_a_message_that_would_expire_before_quiet_hours_end_is_warned_about(
    run, tokens, families, tmp_path
):
    ends = quiet_now(run, tmp_path)
    soon = (ends - dt.timedelta(hours=1)).astimezone(ZONE).strftime("%Y-%m-%dT%H:%M%z")
    mid = compose(run, tokens, "--valid-until", soon)
    found = run.json("preview", str(mid))["findings"]
    late = [f for f in found if f["check"] == "delivery_time"]
    assert {f["channel"] for f in late} == {"sms", "voice"}
    assert all("its valid until" in f["detail"] for f in late)


def test_emergencies_pre_approved_and_urgent_categories_never_wait(
    run, tokens, families, tmp_path, session_factory
):
    quiet_now(run, tmp_path)
    lockdown = run.json(
        "trigger", "lockdown", "--as", "carmen", "--var", "school=lincoln-hs",
        "--channels", "sms", "--audience", "all", "--yes", "--no-follow",
        token=tokens["carmen"],
    )  # fmt: skip
    closure = run.json(
        "compose", "school_closure", "--as", "ana", "--var", "schools=all",
        "--var", "date=2026-03-03", "--var", "reason=snow", "--var", "reason.es=nieve",
        "--channels", "sms", "--audience", "all", token=tokens["ana"],
    )  # fmt: skip
    assert approve(run, tokens, closure["id"]).exit_code == 0
    with session_factory() as session:
        for mid in (lockdown["id"], closure["id"]):
            assert session.get(Message, mid).quiet_until is None
            assert "dispatch.quiet_hours" not in events(session, mid)


def test_an_approver_sends_at_once_with_a_reason_the_ledger_keeps(
    run, tokens, families, tmp_path, session_factory
):
    quiet_now(run, tmp_path)
    mid = compose(run, tokens)
    reason = "the concert is tomorrow at 7 a.m.; families must know tonight"
    result = approve(run, tokens, mid, "--send-in-quiet-hours", reason)
    assert result.exit_code == 0, result.output
    with session_factory() as session:
        message = session.get(Message, mid)
        assert message.quiet_until is None and message.quiet_override == reason
        found = events(session, mid)
        assert "dispatch.quiet_hours" not in found
        assert found["message.approve"]["quiet_hours_override"] == reason


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("   ", "say why"),
        ("urgent\u202e", "quiet hours override"),
        ("x" * 301, "over 300 characters"),
    ],
)
def test_an_override_without_a_proper_reason_is_refused_and_changes_nothing(
    run, tokens, families, tmp_path, session_factory, reason, says
):
    quiet_now(run, tmp_path)
    mid = compose(run, tokens)
    result = approve(run, tokens, mid, "--send-in-quiet-hours", reason)
    assert result.exit_code == 2 and says in result.output
    with session_factory() as session:
        assert session.get(Message, mid).state == "submitted"
        assert not rows(session, mid)


@ON_POSTGRESQL
def test_workers_send_the_posts_at_night_and_the_texts_when_quiet_hours_end(
    stack, run, tokens, families, tmp_path, session_factory
):
    """Real workers: the web page and the e-mails go at once while the texts and calls wait;
    when the night is over (played by moving the held time to now) the beat lets them go."""
    quiet_now(run, tmp_path)
    mid = compose(run, tokens)
    assert approve(run, tokens, mid).exit_code == 0
    stack.start_worker()
    stack.wait_for(lambda: stack.sandbox.smtp_messages(), timeout=90)

    def settled(channel: str) -> bool:
        with session_factory() as session:
            found = rows(session, mid).get(channel, [])
            return bool(found) and all(r.status != "queued" for r in found)

    stack.wait_for(lambda: settled("web") and settled("email"), timeout=90)
    assert stack.sandbox.posts("twilio") == [] and stack.sandbox.posts("voice") == []
    waiting = run.json("status", str(mid))
    assert waiting["state"] == "dispatching" and waiting["quiet_until_local"]
    assert "wait for quiet hours to end at" in run("status", str(mid)).output
    with session_factory() as session:
        now = utcnow()
        session.execute(update(Message).where(Message.id == mid).values(quiet_until=now))
        session.execute(
            update(Delivery)
            .where(Delivery.message_id == mid, Delivery.channel.in_(("sms", "voice")))
            .values(next_attempt_at=now)
        )
    done = stack.wait_done(mid)
    assert done["state"] in ("sent", "partially_sent")
    phones = {r["to"] for r in stack.sandbox.posts("twilio")}
    with session_factory() as session:
        texted = {r.recipient for r in rows(session, mid)["sms"]}
    assert phones == texted  # each once, after the night
    assert len(stack.sandbox.posts("twilio")) == len(texted)


def test_a_held_message_can_be_taken_back_and_its_held_texts_never_go(
    run, tokens, families, tmp_path, session_factory
):
    """Posted at night with its texts held: withdrawing it expires the held texts and calls
    (nobody got them, so nobody gets a correction) and takes the posts down as usual."""
    quiet_now(run, tmp_path)
    district = load_district(Path(run.env["BROADCASTER_CONFIG"]))
    mid = compose(run, tokens)
    assert approve(run, tokens, mid).exit_code == 0
    assert expansion.expand(run.settings(), district, [mid]) == []
    with session_factory() as session:  # the posts and e-mails went out
        session.execute(
            update(Delivery)
            .where(Delivery.message_id == mid, Delivery.channel.in_(("web", "email")))
            .values(status="sent", provider_id="post-1", sent_at=utcnow())
        )
    args = ("retract", str(mid), "--as", "ben", "--reason", "wrong date", "--json")
    refused = run(*args[:-1], "--as", "ana", token=tokens["ana"])
    assert refused.exit_code == 2  # an author may not retract: nothing was expired
    with session_factory() as session:
        assert session.get(Message, mid).quiet_until is not None
    result = run(*args, token=tokens["ben"])
    assert result.exit_code == 0, result.output
    with session_factory() as session:
        original = session.get(Message, mid)
        assert original.state == "retracting" and original.quiet_until is None
        held = rows(session, mid)
        assert {r.status for r in held["sms"] + held["voice"]} == {"expired"}
        assert events(session, mid)["delivery.withdrawn_held"] == {
            "expired": len(held["sms"]) + len(held["voice"])
        }
        notice = session.scalars(select(Message).where(Message.follows_id == mid)).one().id
    expansion.expand(run.settings(), district, [notice])
    with session_factory() as session:  # no correction text: the held ones reached nobody
        assert "sms" not in rows(session, notice)
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"], settings=run.settings()) as s:
        assert quiet_release.release_due(s, utcnow() + dt.timedelta(days=1)) == []


def test_the_console_shows_the_hold_and_takes_an_approvers_reason_to_send_now(
    run, tokens, families, tmp_path, session_factory, console
):
    ends = quiet_now(run, tmp_path)
    console.app()  # on the district file with quiet hours
    held, sent_now = compose(run, tokens), compose(run, tokens)
    for mid in (held, sent_now):
        assert run("submit", str(mid), "--as", "ana", token=tokens["ana"]).exit_code == 0
    ben = console.signed_in("ben")
    page = ben.get(f"/console/messages/{held}").get_data(as_text=True)
    assert "Quiet hours: its texts and calls wait until" in page
    assert f'<time datetime="{ends.astimezone(ZONE).isoformat()}">' in page
    assert f'<textarea name="send_in_quiet_hours" id="quiet-{held}"' in page
    bidi = ben.post(
        f"/console/messages/{held}/approve",
        {"ack_warnings": "yes", "send_in_quiet_hours": "now\u202e"},
    )
    assert bidi.status_code == 400
    with session_factory() as session:
        assert session.get(Message, held).state == "submitted"
    plain = ben.post(f"/console/messages/{held}/approve", {"ack_warnings": "yes"})
    assert plain.status_code == 302
    reason = "the concert is at 7 a.m."
    now = ben.post(
        f"/console/messages/{sent_now}/approve",
        {"ack_warnings": "yes", "send_in_quiet_hours": reason},
    )
    assert now.status_code == 302
    with session_factory() as session:
        assert session.get(Message, held).quiet_until == ends
        assert session.get(Message, sent_now).quiet_until is None
        assert events(session, sent_now)["message.approve"]["quiet_hours_override"] == reason
