"""The voice adapter on the real twilio SDK against the sandbox's Programmable Voice: what a
family hears and in which language, the replay prompt, voicemail, refusals before any call,
Twilio's errors as delivery outcomes, finding a call after an ambiguous create, and taking a
call back while it can be."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from channel_adapters import AccountConfig, Outcome, build
from channel_adapters.voice import TWIML_MAX
from provider_sandbox import Sandbox
from tests.delivery.test_adapters import SHORT, TWILIO_SID, TWILIO_TOKEN, ago, fails
from tests.delivery.test_sandbox import wait_for

CALLER_ID = "+19515550100"
FAMILY = "+19515550111"
REPLAY = "https://alerts.riversideusd.org/hooks/twilio/voice/replay"
CLOSURE_ES = (
    "Distrito Unificado de Riverside. Todas las escuelas están cerradas el martes, "
    "tres de marzo, por una tormenta invernal."
)
PROMPT_ES = "Para escuchar este mensaje de nuevo, oprima 1."


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(
        twilio_auth_tokens={TWILIO_SID: TWILIO_TOKEN},
        twilio_status_delay_s=0.02,
        callback_retries=1,
        twilio_call_outcomes={"+19515550155": "machine", "+19515550122": "busy"},
    ) as sb:
        yield sb


def voice(sandbox: Sandbox | None, timeout_s: float = 5.0, **settings: str) -> Any:
    return build(
        AccountConfig(
            name="district-voice",
            channel="voice",
            settings={"account_sid": TWILIO_SID, "from_number": CALLER_ID, **settings},
            credentials={"auth_token": TWILIO_TOKEN},
            sandbox_url=sandbox.url if sandbox else None,
            timeout_s=timeout_s,
        )
    )


def said(sandbox: Sandbox) -> list[tuple[str, str | None, str | None]]:
    (call,) = sandbox.posts("voice")
    return [(s["text"], s["language"], s["voice"]) for s in call["said"]]


def test_a_family_hears_the_message_twice_in_its_language_then_the_replay_prompt(sandbox):
    adapter = voice(sandbox, replay_url=REPLAY, status_callback="https://x.example/hooks/voice")
    receipt = adapter.send(CLOSURE_ES, to=FAMILY, locale="es", prompt=PROMPT_ES)

    (call,) = sandbox.posts("voice")
    assert receipt.provider_id == call["sid"] and receipt.raw["to"] == FAMILY
    assert call["from"] == CALLER_ID
    assert said(sandbox) == [
        (CLOSURE_ES, "es-US", "Polly.Lupe"),
        (CLOSURE_ES, "es-US", "Polly.Lupe"),
        (PROMPT_ES, "es-US", "Polly.Lupe"),
    ]
    assert call["gather"] and f'action="{REPLAY}"' in call["twiml"]
    assert call["machine_detection"] == "DetectMessageEnd"
    assert call["status_callback_events"] == ["initiated", "ringing", "answered", "completed"]
    assert wait_for(lambda: sandbox.posts("voice")[0]["status"] == "completed")


def test_without_a_replay_url_the_message_is_said_twice_and_the_call_ends(sandbox):
    voice(sandbox).send("Riverside USD: schools are closed today.", to=FAMILY)
    text = "Riverside USD: schools are closed today."
    assert said(sandbox) == [(text, "en-US", "Polly.Joanna")] * 2
    assert not sandbox.posts("voice")[0]["gather"]


def test_a_voicemail_keeps_the_whole_message(sandbox):
    voice(sandbox).send("Lockdown lifted at Lincoln High School.", to="+19515550155")
    assert wait_for(lambda: sandbox.posts("voice")[0]["status"] == "completed")
    (call,) = sandbox.posts("voice")
    assert call["answered_by"] == "machine_end_beep" and call["heard"] == call["said"]


@pytest.mark.parametrize(
    "text",
    [
        "Closed</Say><Hangup/><Say>",
        "Tom & Jerry <script>alert(1)</script> {{ district }}",
        "مدارس مغلقة اليوم 🌨️",
        "‮evil‬ text",
    ],
)
def test_what_is_said_is_text_never_markup(sandbox, text):
    voice(sandbox).send(text, to=FAMILY)
    assert said(sandbox)[0][0] == text.strip()
    assert "<Hangup" not in sandbox.posts("voice")[0]["twiml"]


def test_a_district_adds_a_language_and_an_unknown_one_is_refused_before_any_call(sandbox):
    # No Twilio voice speaks Somali: refused, naming the setting, before any call.
    somali = "Dugsiyada way xiran yihiin maanta."
    err = fails(lambda: voice(sandbox).send(somali, to=FAMILY, locale="so"))
    assert err.outcome is Outcome.PERMANENT and "language.so" in str(err)
    assert sandbox.requests("voice") == []
    voice(sandbox, **{"language.so": "so-SO"}).send(somali, to=FAMILY, locale="so")
    assert said(sandbox)[0] == (somali, "so-SO", None)
    # A district's own voice for a locale wins over the default.
    voice(sandbox, **{"voice.en": "Polly.Matthew"}).send("Hello.", to="+19515550166")
    assert sandbox.posts("voice")[1]["said"][0]["voice"] == "Polly.Matthew"


@pytest.mark.parametrize(
    ("locale", "text", "language", "speaker", "prompt"),
    [
        ("vi", "Trường học đóng cửa hôm nay.", "vi-VN", "Google.vi-VN-Standard-A", "phím 1"),
        ("zh", "今天学校停课。", "cmn-CN", "Polly.Zhiyu", "请按1"),
        ("ar", "المدارس مغلقة اليوم.", "arb", "Polly.Zeina", "اضغط 1"),
    ],
)
def test_vietnamese_chinese_and_arabic_have_a_voice_and_a_prompt(
    sandbox, locale, text, language, speaker, prompt
):
    voice(sandbox, replay_url=REPLAY).send(text, to=FAMILY, locale=locale)
    [call] = sandbox.posts("voice")
    assert [(s["text"], s["language"], s["voice"]) for s in call["said"]][:2] == [
        (text, language, speaker)
    ] * 2
    assert prompt in call["said"][-1]["text"] and call["said"][-1]["language"] == language


def test_too_long_or_empty_is_refused_before_any_call(sandbox):
    adapter = voice(sandbox, replay_url=REPLAY)
    err = fails(lambda: adapter.send("word " * (TWIML_MAX // 10), to=FAMILY, prompt="Press 1."))
    assert err.outcome is Outcome.PERMANENT and "4000" in str(err)
    for text in ("", "   "):
        assert fails(lambda t=text: adapter.send(t, to=FAMILY)).outcome is Outcome.PERMANENT
    assert fails(lambda: adapter.send("Hello", to=None)).outcome is Outcome.PERMANENT
    assert sandbox.requests("voice") == []


def test_twilio_errors_become_delivery_outcomes(sandbox):
    adapter = voice(sandbox)
    invalid = fails(lambda: adapter.send("Hello", to="+15005550001"))
    assert invalid.outcome is Outcome.PERMANENT and "21211" in str(invalid)

    sandbox.set_faults([{"provider": "voice", "fault": "status", "status": 503, "count": 1}])
    assert fails(lambda: adapter.send("Hello", to=FAMILY)).outcome is Outcome.RETRYABLE
    sandbox.set_faults([{"provider": "voice", "fault": "rate_limit", "retry_after_s": 30}])
    limited = fails(lambda: adapter.send("Hello", to=FAMILY))
    assert limited.outcome is Outcome.RETRYABLE and limited.retry_after == 30
    sandbox.set_faults([])

    wrong = build(
        AccountConfig(
            name="district-voice",
            channel="voice",
            settings={"account_sid": TWILIO_SID, "from_number": CALLER_ID},
            credentials={"auth_token": "voice-wrong-token-s3cr3t"},
            sandbox_url=sandbox.url,
        )
    )
    denied = fails(lambda: wrong.send("Hello", to=FAMILY), "voice-wrong-token-s3cr3t")
    assert denied.outcome is Outcome.PERMANENT and "20003" in str(denied)
    assert sandbox.posts("voice") == []


def test_a_call_placed_although_the_client_gave_up_is_found_not_placed_again(sandbox):
    sandbox.set_faults(
        [{"provider": "voice", "fault": "timeout_after_accept", "hold_ms": 3000, "count": 1}]
    )
    adapter = voice(sandbox, timeout_s=SHORT)
    since = ago()
    err = fails(lambda: adapter.send("Shelter in place: Jefferson ES.", to=FAMILY))
    assert err.outcome is Outcome.AMBIGUOUS
    (call,) = sandbox.posts("voice")
    found = adapter.lookup("Shelter in place: Jefferson ES.", to=FAMILY, since=since)
    assert found is not None and found.provider_id == call["sid"]
    assert adapter.lookup("x", to="+19515550166", since=since) is None
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert adapter.lookup("x", to=FAMILY, since=later) is None


def test_a_ringing_call_is_cancelled_an_answered_one_hung_up_an_ended_one_refused():
    with Sandbox(twilio_auth_tokens={TWILIO_SID: TWILIO_TOKEN}, twilio_status_delay_s=0.4) as sb:
        adapter = voice(sb)
        ringing = adapter.send("Wrong school: ignore this message.", to=FAMILY)
        adapter.retract(ringing)
        assert adapter.fetch(ringing.provider_id).raw["status"] == "canceled"
        assert sb.posts("voice")[0]["heard"] == []

        answered = adapter.send("Wrong school: ignore this message.", to="+19515550166")
        assert wait_for(lambda: adapter.fetch(answered.provider_id).raw["status"] == "in-progress")
        adapter.retract(answered)
        assert adapter.fetch(answered.provider_id).raw["status"] == "completed"

        err = fails(lambda: adapter.retract(answered))
        assert err.outcome is Outcome.PERMANENT and "correction" in str(err)


def test_an_account_needs_its_caller_id_and_credentials():
    for settings, credentials, missing in (
        ({"account_sid": TWILIO_SID}, {"auth_token": TWILIO_TOKEN}, "from_number"),
        ({"from_number": CALLER_ID}, {"auth_token": TWILIO_TOKEN}, "account_sid"),
        ({"account_sid": TWILIO_SID, "from_number": CALLER_ID}, {}, "auth_token"),
    ):
        with pytest.raises(ValueError, match=missing):
            build(AccountConfig("v", "voice", settings=settings, credentials=credentials))
