"""Twilio's call status callbacks on the real web app: a call a person or a voicemail answered
is `delivered`; busy, no answer, a failed or cancelled call is `failed`, saying why. Only the
account that placed the call can report on it, signed with its own token; the report only moves
a call forward."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import select

from broadcaster.core import ledger
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT, load_district
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Delivery, Message
from broadcaster.delivery import provider_callbacks
from broadcaster.delivery.accounts import identity, twilio_signer
from tests.conftest import ON_POSTGRESQL, submit_and_approve
from tests.web.test_twilio_hooks import signed_post, sms_identity

FAMILIES = {
    "+14155550100": "answered",
    "+14155550101": "machine",
    "+14155550102": "busy",
    "+14155550103": "no-answer",
    "+14155550104": "failed",
}


def voice_account(run, tmp_path: Path, settings: str) -> None:
    """The sample district with these lines added to its voice account."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('name = "district-voice"\n', f'name = "district-voice"\n{settings}\n', 1)
    text = text.replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)


def calls(session_factory) -> dict[str, tuple[str, str | None]]:
    with session_factory() as session:
        rows = session.execute(
            select(Delivery.recipient, Delivery.status, Delivery.error).where(
                Delivery.channel == "voice"
            )
        ).all()
    return {phone: (status, error) for phone, status, error in rows}


def call_families(run, tokens, tmp_path, compose_closure) -> dict:
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    csv.write_text("phone,language\n" + "".join(f"{p},en\n" for p in FAMILIES), "utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "voice")
    submit_and_approve(run, tokens, draft)
    return draft


def test_call_outcomes_mark_calls_delivered_or_failed_with_the_reason(
    stack, run, tokens, web_app, tmp_path, session_factory, compose_closure
):
    voice_account(run, tmp_path, "recalls = 0")  # no second call: each outcome is final
    url = web_app()
    run.env["BROADCASTER_PUBLIC_URL"] = url
    for phone, outcome in FAMILIES.items():
        stack.sandbox.set_call_outcome(phone, outcome)
    draft = call_families(run, tokens, tmp_path, compose_closure)
    stack.start_worker()
    stack.wait_done(draft["id"])

    expected = {
        "+14155550100": "delivered",
        "+14155550101": "delivered",
        "+14155550102": "failed",
        "+14155550103": "failed",
        "+14155550104": "failed",
    }
    stack.wait_for(lambda: {p: s for p, (s, _) in calls(session_factory).items()} == expected)
    reasons = {p: e for p, (_, e) in calls(session_factory).items()}
    assert "busy" in reasons["+14155550102"]
    assert "no answer" in reasons["+14155550103"]
    assert "failed" in reasons["+14155550104"]
    # Each placed call asked for its progress events at the web app's hook.
    for call in stack.sandbox.posts("voice"):
        assert call["status_callback"] == f"{url}/hooks/twilio/voice/status"
        assert all(c["ok"] for c in call["callbacks"]), call["callbacks"]
    with session_factory() as session:
        reported = [
            (entry.event, payload["status"])
            for entry, payload in ledger.entries_for(
                session, draft["id"], events=("delivery.delivered", "delivery.failed")
            )
            if payload and "status" in payload
        ]
    assert sorted(reported) == [
        ("delivery.delivered", "completed"),
        ("delivery.delivered", "completed"),
        ("delivery.failed", "busy"),
        ("delivery.failed", "failed"),
        ("delivery.failed", "no-answer"),
    ]
    assert run("records", "verify").exit_code == 0


def voice_identity(district, name: str) -> tuple[str, str]:
    """A voice account's AccountSid and auth token as the sandbox serves it (public)."""
    account = next(a for a in district.accounts if a.name == name)
    settings, credentials = identity(account, "test")
    return settings["account_sid"], credentials["auth_token"]


def test_a_call_report_from_another_account_forged_or_late_changes_nothing(
    stack, run, tokens, web_app, tmp_path, session_factory, compose_closure, district
):
    url = web_app()
    run.env["BROADCASTER_PUBLIC_URL"] = url
    draft = call_families(run, tokens, tmp_path, compose_closure)
    stack.start_worker()
    stack.wait_done(draft["id"])
    stack.wait_for(lambda: calls(session_factory)["+14155550100"][0] == "delivered")
    answered = next(c for c in stack.sandbox.posts("voice") if c["to"] == "+14155550100")
    hook = f"{url}/hooks/twilio/voice/status"
    report = {"CallSid": answered["sid"], "CallStatus": "busy"}

    # Signed by the SMS account (another AccountSid, its own public sandbox token).
    sms_sid, _, sms_token = sms_identity(district, "district-sms")
    assert signed_post(hook, {**report, "AccountSid": sms_sid}, sms_token, hook).status_code == 403
    # The voice account's SID, signed with a token that is not its own.
    voice_sid, voice_token = voice_identity(district, "district-voice")
    assert voice_sid == answered["account_sid"]
    wrong = signed_post(hook, {**report, "AccountSid": voice_sid}, "not-the-token", hook)
    assert wrong.status_code == 403
    # Properly signed but late: a delivered call never goes back to failed.
    late = signed_post(hook, {**report, "AccountSid": voice_sid}, voice_token, hook)
    assert late.status_code == 204
    # A call this district never placed changes nothing.
    stray = {"CallSid": "CA" + uuid.uuid4().hex, "CallStatus": "failed", "AccountSid": voice_sid}
    assert signed_post(hook, stray, voice_token, hook).status_code == 204
    # The texts' hook does not take call reports, nor the calls' hook text reports.
    text_report = {
        "AccountSid": voice_sid,
        "MessageSid": answered["sid"],
        "MessageStatus": "failed",
    }
    signed_post(
        f"{url}/hooks/twilio/status", text_report, voice_token, f"{url}/hooks/twilio/status"
    )
    assert calls(session_factory)["+14155550100"] == ("delivered", None)


@ON_POSTGRESQL
def test_a_busy_or_unanswered_call_is_placed_again_later_then_given_up(
    stack, run, tokens, web_app, tmp_path, session_factory, compose_closure
):
    """Each call again `recall_after_s` later, at most `recalls` more times: the busy line is
    called three times and fails saying so; the family that did not answer the first time
    answers the second. The finished message goes back to dispatching while a call is due."""
    voice_account(run, tmp_path, "recall_after_s = 1\nrecalls = 2")
    url = web_app()
    run.env["BROADCASTER_PUBLIC_URL"] = url
    busy, late, quick = "+14155550102", "+14155550103", "+14155550100"
    stack.sandbox.set_call_outcome(busy, "busy")
    stack.sandbox.set_call_outcome(late, "no-answer")
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    csv.write_text(f"phone,language\n{quick},en\n{busy},en\n{late},es\n", "utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "voice")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()

    def placed(phone: str) -> list[dict]:
        return [c for c in stack.sandbox.posts("voice") if c["to"] == phone]

    stack.wait_for(lambda: len(placed(late)) == 1 and placed(late)[0]["callbacks"], timeout=60)
    stack.sandbox.set_call_outcome(late, "answered")  # home now: the second call is answered
    stack.wait_for(
        lambda: (
            calls(session_factory).get(busy, ("",))[0] == "failed"
            and calls(session_factory)[late][0] == "delivered"
        ),
        timeout=120,
    )
    assert len(placed(busy)) == 3 and len(placed(late)) == 2 and len(placed(quick)) == 1
    assert calls(session_factory)[busy] == (
        "failed",
        "Call not answered: the line was busy, 3 calls",
    )
    assert placed(late)[1]["said"][0]["language"] == "es-US"  # the second call in Spanish too
    # Like a text's delivery report, the last call's outcome arrives after the message finished:
    # its state says every call was placed, the calls' own statuses who answered.
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    counted = {k: n for k, n in view["deliveries"]["voice"].items() if n}
    assert counted == {"delivered": 2, "failed": 1}, view
    with session_factory() as session:
        recalls = [
            (entry.event, payload["status"], payload["calls"])
            for entry, payload in ledger.entries_for(
                session, draft["id"], events=("delivery.recall",)
            )
        ]
        steps = [e.event for e, _ in ledger.entries_for(session, draft["id"], events=("message.",))]
    assert sorted(recalls) == [
        ("delivery.recall", "busy", 1),
        ("delivery.recall", "busy", 2),
        ("delivery.recall", "no-answer", 1),
    ]
    assert steps[-1] == "message.finish_sent"
    assert run("records", "verify").exit_code == 0


def test_only_a_voice_account_has_recalls(tmp_path):
    text = SAMPLE_CONFIG.read_text(encoding="utf-8").replace(
        'name = "district-sms"\n', 'name = "district-sms"\nrecalls = 1\n', 1
    )
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput, match="only a voice account has recalls"):
        load_district(config)


def test_pressing_1_hears_the_message_again_in_the_familys_language(
    stack, run, tokens, web_app, tmp_path, session_factory, compose_closure, district
):
    url = web_app()
    run.env["BROADCASTER_PUBLIC_URL"] = url
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    csv.write_text("phone,language\n+14155550100,es\n", "utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "voice")
    spoken = next(
        r["text"] for r in draft["renditions"] if r["channel"] == "voice" and r["locale"] == "es"
    )
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    stack.wait_done(draft["id"])
    (call,) = stack.sandbox.posts("voice")
    replay = f"{url}/hooks/twilio/voice/replay"
    assert call["gather"] and f'action="{replay}"' in call["twiml"]
    prompt = "Para escuchar este mensaje de nuevo, oprima 1."
    assert [s["text"] for s in call["said"]] == [spoken, spoken, prompt]

    voice_sid, voice_token = voice_identity(district, "district-voice")
    pressed = {"AccountSid": voice_sid, "CallSid": call["sid"], "Digits": "1"}
    again = signed_post(replay, pressed, voice_token, replay)
    assert again.status_code == 200 and again.headers["Content-Type"].startswith("application/xml")
    root = etree.fromstring(again.content)
    says = [(s.text, s.get("language")) for s in root.iter("Say")]
    assert says == [(spoken, "es-US"), (spoken, "es-US"), (prompt, "es-US")]
    assert root.find("Gather").get("action") == replay  # and again, as often as they press 1

    other = signed_post(replay, {**pressed, "Digits": "9"}, voice_token, replay)
    assert [e.tag for e in etree.fromstring(other.content)] == ["Hangup"]
    # Not the account that placed it, or not signed at all: nothing is read out.
    sms_sid, _, sms_token = sms_identity(district, "district-sms")
    forged = signed_post(replay, {**pressed, "AccountSid": sms_sid}, sms_token, replay)
    assert forged.status_code == 403
    assert signed_post(replay, pressed, "wrong-token", replay).status_code == 403
    stray = {**pressed, "CallSid": "CA" + uuid.uuid4().hex}
    assert signed_post(replay, stray, voice_token, replay).status_code == 403


def test_a_call_recalled_after_its_message_finished_reopens_it_until_placed_again(
    stack, run, tokens, tmp_path, session_factory, compose_closure
):
    """No web app here: the report is applied as the hook applies it, once the message is sent."""
    voice_account(run, tmp_path, "recall_after_s = 1")
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    csv.write_text("phone,language\n+14155550100,en\n", "utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "voice")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "sent"
    (call,) = stack.sandbox.posts("voice")
    district = load_district(Path(run.env["BROADCASTER_CONFIG"]))
    account = next(a for a in district.accounts if a.name == "district-voice")
    with session_factory() as session:  # commits at the end of the block
        reported = provider_callbacks.report(
            session,
            district,
            twilio_signer(account, "actual"),
            call["sid"],
            "no-answer",
            None,
            channel="voice",
        )
    assert reported.ours and reported.delivery is not None
    with session_factory() as session:
        message = session.get(Message, draft["id"])
        assert message.state == "dispatching"
        row = session.scalars(select(Delivery).where(Delivery.message_id == draft["id"])).one()
        assert row.status == "queued" and row.next_attempt_at is not None
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent"
    assert [c["to"] for c in stack.sandbox.posts("voice")] == ["+14155550100"] * 2
    with session_factory() as session:
        steps = [e.event for e, _ in ledger.entries_for(session, draft["id"], events=("message.",))]
    assert steps[-3:] == ["message.finish_sent", "message.recall", "message.finish_sent"]


def most_at_once(spans: list[tuple[float, float | None]]) -> int:
    """The most calls in progress at the same moment, from their (start, end) times."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans if end])
    live = peak = 0
    for _, change in edges:
        live += change
        peak = max(peak, live)
    return peak


@ON_POSTGRESQL
def test_calls_in_progress_stay_under_the_accounts_cap(
    stack, run, tokens, web_app, tmp_path, session_factory, compose_closure
):
    # Fast enough to call them all at once; at most two in progress, freed by the end reports.
    voice_account(run, tmp_path, "rate_per_second = 50\nmax_concurrent_calls = 2")
    run.env["BROADCASTER_PUBLIC_URL"] = web_app()
    admin = run.json("users", "add", "it")["token"]
    phones = [f"+1415555{i:04d}" for i in range(200, 210)]
    csv = tmp_path / "c.csv"
    csv.write_text("phone,language\n" + "".join(f"{p},en\n" for p in phones), "utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "voice")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    stack.wait_done(draft["id"])
    stack.wait_for(lambda: all(s == "delivered" for s, _ in calls(session_factory).values()))
    placed = stack.sandbox.posts("voice")
    assert sorted(c["to"] for c in placed) == phones  # each once
    assert most_at_once([c["live"] for c in placed]) <= 2
    assert all(c["live"][1] is not None for c in placed)


def test_only_a_voice_account_caps_its_calls(tmp_path):
    text = SAMPLE_CONFIG.read_text(encoding="utf-8").replace(
        'name = "district-sms"\n', 'name = "district-sms"\nmax_concurrent_calls = 3\n', 1
    )
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(BadInput, match="only a voice account has max_concurrent_calls"):
        load_district(config)
