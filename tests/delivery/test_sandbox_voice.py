"""The sandbox's Twilio Programmable Voice, as twilio's `client.calls` sees it: placing calls
with inline TwiML, what each call said and in which language, how calls end (a person, a
voicemail, busy, no answer, failed), status callbacks signed like Twilio's, cancelling and
hanging up, Twilio's refusals, and fault rules that touch calls and not texts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from provider_sandbox import RemoteSandbox, Sandbox
from tests.delivery.test_sandbox import SERVICE, SID, TIMEOUT, TOKEN, twilio_client, wait_for

FROM = "+19515550100"
FAMILY = "+19515550111"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(
        twilio_auth_tokens={SID: TOKEN},
        twilio_status_delay_s=0.02,
        callback_retries=1,
        callback_timeout_s=1.0,
        twilio_call_outcomes={
            "+19515550122": "busy",
            "+19515550133": "no-answer",
            "+19515550144": "failed",
            "+19515550155": "machine",
        },
    ) as sb:
        yield sb


class Receiver:
    """A status-callback endpoint on loopback keeping every form it is posted, with the
    signature Twilio's own validator computes for it."""

    def __init__(self) -> None:
        self.forms: list[tuple[dict[str, str], str]] = []
        received = self.forms

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                received.append((form, self.headers.get("X-Twilio-Signature", "")))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/voice"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self) -> list[str]:
        return [form["CallStatus"] for form, _ in self.forms]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def closure_twiml(language: str, text: str, prompt: str) -> str:
    response = VoiceResponse()
    response.say(text, language=language, voice="Polly.Lupe" if language == "es-US" else None)
    gather = response.gather(num_digits=1, timeout=5, action="https://alerts.example/replay")
    gather.say(text, language=language)
    gather.say(prompt, language=language)
    return str(response)


EVENTS = ["initiated", "ringing", "answered", "completed"]


def test_a_call_says_its_twiml_in_its_language_and_reports_each_event_signed(sandbox, receiver):
    client = twilio_client(sandbox)
    text = (
        "Distrito Unificado de Riverside: todas las escuelas están cerradas el martes 3 de marzo."
    )
    call = client.calls.create(
        to=FAMILY,
        from_=FROM,
        twiml=closure_twiml("es-US", text, "Oprima 1 para escucharlo de nuevo."),
        status_callback=receiver.url,
        status_callback_event=EVENTS,
        machine_detection="DetectMessageEnd",
    )
    assert call.sid.startswith("CA") and call.status == "queued" and call.to == FAMILY
    assert wait_for(lambda: client.calls(call.sid).fetch().status == "completed")
    assert wait_for(lambda: len(receiver.forms) == 4)
    assert receiver.statuses() == ["initiated", "ringing", "in-progress", "completed"]
    validator = RequestValidator(TOKEN)
    for form, signature in receiver.forms:
        assert validator.validate(receiver.url, form, signature), form
        assert form["CallSid"] == call.sid and form["AccountSid"] == SID
        assert form.get("AnsweredBy") == "human" or form["CallStatus"] in ("initiated", "ringing")
    assert [f["SequenceNumber"] for f, _ in receiver.forms] == ["0", "1", "2", "3"]
    assert int(receiver.forms[-1][0]["CallDuration"]) > 0

    (placed,) = sandbox.posts("voice")
    assert [(s["text"], s["language"]) for s in placed["said"]] == [
        (text, "es-US"),
        (text, "es-US"),
        ("Oprima 1 para escucharlo de nuevo.", "es-US"),
    ]
    assert placed["said"][0]["voice"] == "Polly.Lupe"
    assert placed["gather"] and placed["heard"] == placed["said"]
    assert placed["answered_by"] == "human"
    # Calls are their own provider: no text was sent, and the log says `voice`.
    assert sandbox.posts("twilio") == []
    log = sandbox.requests()
    assert {e["provider"] for e in log} == {"voice"} and log[0]["method"] == "POST"
    assert log[0]["resource_id"] == call.sid


@pytest.mark.parametrize(
    ("number", "final", "events", "heard"),
    [
        ("+19515550122", "busy", ["initiated", "ringing", "busy"], False),
        ("+19515550133", "no-answer", ["initiated", "ringing", "no-answer"], False),
        ("+19515550144", "failed", ["initiated", "failed"], False),
        ("+19515550155", "completed", ["initiated", "ringing", "in-progress", "completed"], True),
    ],
)
def test_calls_end_the_way_the_number_is_configured(
    sandbox, receiver, number, final, events, heard
):
    client = twilio_client(sandbox)
    call = client.calls.create(
        to=number,
        from_=FROM,
        twiml=closure_twiml("en-US", "Schools are closed.", "Press 1 to hear it again."),
        status_callback=receiver.url,
        status_callback_event=EVENTS,
        machine_detection="DetectMessageEnd",
    )
    assert wait_for(lambda: client.calls(call.sid).fetch().status == final)
    assert wait_for(lambda: len(receiver.forms) == len(events))
    assert receiver.statuses() == events
    placed = sandbox.posts("voice")[0]
    assert bool(placed["heard"]) is heard
    if number == "+19515550155":  # a voicemail: the whole message after the beep
        assert placed["answered_by"] == "machine_end_beep"
        assert receiver.forms[-1][0]["AnsweredBy"] == "machine_end_beep"
    else:
        assert placed["duration"] == "0"


def test_only_the_completed_event_is_reported_unless_others_are_asked_for(sandbox, receiver):
    client = twilio_client(sandbox)
    call = client.calls.create(
        to=FAMILY,
        from_=FROM,
        twiml="<Response><Say>Hi</Say></Response>",
        status_callback=receiver.url,
    )
    assert wait_for(lambda: client.calls(call.sid).fetch().status == "completed")
    assert wait_for(lambda: len(receiver.forms) == 1)
    assert receiver.statuses() == ["completed"]
    assert "AnsweredBy" not in receiver.forms[0][0]  # no machine detection asked for


def test_a_ringing_call_can_be_cancelled_and_an_answered_one_hung_up():
    with Sandbox(twilio_auth_tokens={SID: TOKEN}, twilio_status_delay_s=0.5) as sb:
        client = twilio_client(sb)
        call = client.calls.create(
            to=FAMILY, from_=FROM, twiml="<Response><Say>Hi</Say></Response>"
        )
        assert client.calls(call.sid).update(status="canceled").status == "canceled"
        with pytest.raises(TwilioRestException) as refused:
            client.calls(call.sid).update(status="completed")
        assert refused.value.code == 21220
        assert sb.posts("voice")[0]["heard"] == []  # cancelled before anyone answered

        other = client.calls.create(
            to=FAMILY, from_=FROM, twiml="<Response><Say>Hi</Say></Response>"
        )
        assert wait_for(lambda: client.calls(other.sid).fetch().status == "in-progress", 5)
        assert client.calls(other.sid).update(status="completed").status == "completed"
        assert client.calls(other.sid).fetch().status == "completed"


def test_calls_are_listed_newest_first_and_filtered_by_number(sandbox):
    client = twilio_client(sandbox)
    sids = [
        client.calls.create(to=to, from_=FROM, twiml="<Response><Say>Hi</Say></Response>").sid
        for to in (FAMILY, "+19515550166", FAMILY)
    ]
    assert [c.sid for c in client.calls.list(to=FAMILY)] == [sids[2], sids[0]]
    assert [c.sid for c in client.calls.list(limit=5)] == list(reversed(sids))
    assert client.calls.list(to="+19515550177") == []


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": FROM, "Twiml": "<Response/>"}, 21201),
        ({"To": FAMILY, "Twiml": "<Response/>"}, 21213),
        ({"To": "555-0111", "From": FROM, "Twiml": "<Response/>"}, 21211),
        ({"To": FAMILY, "From": FROM}, 21205),
        ({"To": FAMILY, "From": FROM, "Url": "file:///etc/passwd"}, 21205),
        ({"To": FAMILY, "From": FROM, "Twiml": "<Response><Say>" + "x" * 4000}, 32018),
        ({"To": FAMILY, "From": FROM, "Twiml": "<Response><Say>unclosed"}, 12100),
        ({"To": FAMILY, "From": FROM, "Twiml": "<Speak>hi</Speak>"}, 12100),
        ({"To": FAMILY, "From": FROM, "Twiml": "<Response><Dial>+1</Dial></Response>"}, 12100),
        (
            {
                "To": FAMILY,
                "From": FROM,
                "Twiml": '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                "<Response><Say>&x;</Say></Response>",
            },
            12100,
        ),
        ({"To": FAMILY, "From": FROM, "Twiml": "<Response/>", "StatusCallback": "ftp://x"}, 21609),
        (
            {"To": FAMILY, "From": FROM, "Twiml": "<Response/>", "StatusCallbackEvent": "x"},
            21626,
        ),
    ],
)
def test_twilio_refusals(sandbox, form, code):
    answer = requests.post(
        f"{sandbox.url}/2010-04-01/Accounts/{SID}/Calls.json",
        data=form,
        auth=(SID, TOKEN),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 400 and answer.json()["code"] == code
    assert sandbox.posts("voice") == []


def test_calls_need_the_accounts_token(sandbox):
    calls = f"{sandbox.url}/2010-04-01/Accounts/{SID}/Calls.json"
    form = {"To": FAMILY, "From": FROM, "Twiml": "<Response/>"}
    for auth in (None, (SID, "wrong"), ("AC" + "0" * 32, TOKEN)):
        answer = requests.post(calls, data=form, auth=auth, timeout=TIMEOUT)
        assert answer.status_code == 401 and answer.json()["code"] == 20003
    assert sandbox.posts("voice") == []


def test_fault_rules_for_calls_leave_texts_alone_and_the_other_way_round(sandbox):
    client = twilio_client(sandbox)
    sandbox.set_faults([{"provider": "voice", "fault": "status", "status": 503, "count": 1}])
    client.messages.create(to=FAMILY, body="text", messaging_service_sid=SERVICE)
    with pytest.raises(TwilioRestException) as failed:
        client.calls.create(to=FAMILY, from_=FROM, twiml="<Response/>")
    assert failed.value.status == 503
    sandbox.set_faults([{"provider": "twilio", "fault": "rate_limit", "retry_after_s": 1}])
    assert client.calls.create(to=FAMILY, from_=FROM, twiml="<Response/>").sid.startswith("CA")
    with pytest.raises(TwilioRestException) as limited:
        client.messages.create(to=FAMILY, body="text", messaging_service_sid=SERVICE)
    assert limited.value.status == 429
    assert len(sandbox.posts("voice")) == 1 and len(sandbox.posts("twilio")) == 1


def test_call_outcomes_are_set_over_http(sandbox):
    remote = RemoteSandbox(sandbox.url)
    remote.set_call_outcome(FAMILY, "busy")
    client = twilio_client(sandbox)
    call = client.calls.create(to=FAMILY, from_=FROM, twiml="<Response/>")
    assert wait_for(lambda: client.calls(call.sid).fetch().status == "busy")
    with pytest.raises(ValueError, match="one of answered"):
        remote.set_call_outcome(FAMILY, "exploded")
    remote.set_call_outcome(FAMILY, None)
    again = client.calls.create(to=FAMILY, from_=FROM, twiml="<Response/>")
    assert wait_for(lambda: client.calls(again.sid).fetch().status == "completed")
