"""Calls end to end: a message with the voice channel, composed, approved and sent by real Celery
workers through the voice adapter on the real twilio SDK to the sandbox. Every phone of the
audience is called once, in its language, beside its text; the preview plans the calls at the
account's calls a second; faults and a killed worker lose and duplicate nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT
from tests.conftest import ON_POSTGRESQL, submit_and_approve
from tests.delivery_stack import import_contacts, texts_by_phone

SPOKEN = {"en": "en-US", "es": "es-US"}


@pytest.fixture
def quick_calls(run, tmp_path: Path) -> None:
    """The sample district with its voice account at 20 calls a second (Twilio's default is 1,
    which would make a test of a few dozen calls wait a minute for the rate limit)."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace(
        'name = "district-voice"\n', 'name = "district-voice"\nrate_per_second = 20.0\n', 1
    ).replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)


def calls_by_phone(sandbox) -> dict[str, list[dict]]:
    called: dict[str, list[dict]] = {}
    for call in sandbox.posts("voice"):
        called.setdefault(call["to"], []).append(call)
    return called


def test_a_bilingual_closure_calls_and_texts_each_phone_once_in_its_language(
    quick_calls, stack, run, tokens, compose_closure, tmp_path
):
    expected = import_contacts(run, tmp_path, 40)
    draft = compose_closure("--channels", "sms,voice,web")
    spoken = {r["locale"]: r["text"] for r in draft["renditions"] if r["channel"] == "voice"}
    texts = {r["locale"]: r["text"] for r in draft["renditions"] if r["channel"] == "sms"}
    assert set(spoken) == {"en", "es"}
    assert [t["account"] for t in draft["targets"] if t["channel"] == "voice"] == ["district-voice"]
    plan = draft["plan"]["voice"]
    assert plan["recipients"] == len(expected) and plan["segments"] == len(expected)
    assert plan["rate_per_s"] == 20.0

    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    assert view["deliveries"]["voice"]["sent"] == len(expected)
    assert view["deliveries"]["sms"]["sent"] == len(expected)

    called = calls_by_phone(stack.sandbox)
    assert set(called) == set(expected)  # opted-out phones are not called either
    assert all(len(calls) == 1 for calls in called.values())
    for phone, (call,) in called.items():
        language = expected[phone]
        said = call["said"]
        assert said[0]["text"] == spoken[language]
        assert {s["language"] for s in said} == {SPOKEN[language]}
        assert len(said) == 2  # said twice
    received = texts_by_phone(stack.sandbox)
    assert {p: t[0] for p, t in received.items()} == {p: texts[expected[p]] for p in expected}
    assert run("records", "verify").exit_code == 0


@pytest.mark.slow
@ON_POSTGRESQL
def test_calls_survive_faults_and_a_killed_worker_with_nothing_lost_or_duplicated(
    quick_calls, stack, run, tokens, compose_closure, tmp_path
):
    expected = import_contacts(run, tmp_path, 60)
    stack.sandbox.set_faults(
        [
            {"provider": "voice", "fault": "status", "status": 503, "rate": 0.2, "seed": 3},
            {
                "provider": "voice",
                "fault": "timeout_after_accept",
                "method": "POST",
                "hold_ms": 12_000,
                "rate": 0.1,
                "seed": 5,
            },
            {"provider": "voice", "fault": "rate_limit", "retry_after_s": 1, "count": 3},
            {"provider": "voice", "fault": "drop", "count": 2},
        ]
    )
    draft = compose_closure("--channels", "voice")
    submit_and_approve(run, tokens, draft)
    doomed = stack.start_worker(concurrency=4)
    stack.wait_for(lambda: len(stack.sandbox.posts("voice")) >= 5)
    stack.kill(doomed)
    stack.start_worker(concurrency=4)
    view = stack.wait_done(draft["id"], timeout=240)
    assert view["state"] == "sent", view
    called = calls_by_phone(stack.sandbox)
    assert set(called) == set(expected)
    assert {p: len(c) for p, c in called.items() if len(c) > 1} == {}
    assert run("records", "verify").exit_code == 0
