"""STOP, START and HELP in every language, over the real signed web hook (issue 14, item 3): the
keyword's language is answered in that language, an English keyword in the contact's language;
what a phone or a person adds around a word still counts; anything else is not a keyword."""

from __future__ import annotations

import pytest

from broadcaster.core.sms_keywords import WORDS, classify, fold, reply, unreviewed
from tests.web.test_twilio_hooks import inbound_form, opted_out, signed_post, sms_identity

MOBILE = "+14155550177"
# What each language's STOP reply says (a phrase of it): the reply is in that language.
STOPPED = {
    "en": "no longer receive texts",
    "es": "ya no recibirá",
    "vi": "không nhận tin nhắn",
    "zh": "不再收到",
    "ar": "لن تصلك",
    "so": "nagama heli doontid",
}
STARTED = {
    "en": "receive district alerts again",
    "es": "volverá a recibir",
    "vi": "nhận lại thông báo",
    "zh": "重新收到",
    "ar": "ستصلك تنبيهات",
    "so": "mar kale heli doontaa",
}


@pytest.fixture
def texting(run, web_app, district):
    """Text the district's number from a phone; returns the TwiML reply."""
    url = web_app()
    sid, service, token = sms_identity(district, "district-sms")
    hook = f"{url}/hooks/twilio/inbound"

    def text(body: str, phone: str = MOBILE) -> str:
        form = inbound_form(sid, body, phone, MessagingServiceSid=service)
        response = signed_post(hook, form, token, hook)
        assert response.status_code == 200
        return response.text

    return text


@pytest.mark.parametrize("language", list(STOPPED))
def test_each_languages_stop_and_start_answer_in_that_language(texting, session_factory, language):
    for stop in WORDS["stop"][language]:
        answer = texting(stop.upper())
        assert STOPPED[language] in answer, stop
        assert opted_out(session_factory) == {MOBILE}
        start = WORDS["start"][language][0]
        assert STARTED[language] in texting(start), start
        assert opted_out(session_factory) == set()
    help_word = WORDS["help"][language][0]
    assert "<Message>" in texting(help_word)


def test_an_english_keyword_is_answered_in_the_contacts_language(
    texting, run, tmp_path, session_factory
):
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "families.csv"
    csv.write_text("phone,language\n+14155550178,es\n", encoding="utf-8")
    assert run("contacts", "import", str(csv), "--as", "it", token=admin).exit_code == 0
    assert STOPPED["es"] in texting("STOP", "+14155550178")
    assert STARTED["es"] in texting("start", "+14155550178")
    assert STOPPED["en"] in texting("STOP", "+14155550179")  # not a known contact: English


@pytest.mark.parametrize(
    ("typed", "action", "language"),
    [
        ("  Stop. ", "stop", "en"),
        ("ＳＴＯＰ", "stop", "en"),  # full-width, as some keyboards type it
        ("ST\u200bOP", "stop", "en"),  # an invisible character inside
        ("¡ALTO!", "stop", "es"),
        ("DUNG", "stop", "vi"),  # Vietnamese typed without its accents
        ("Dừng", "stop", "vi"),
        ("停止。", "stop", "zh"),
        ("الغاء", "stop", "ar"),  # without the hamza
        ("تـوقف", "stop", "ar"),  # with a tatweel
        ("bat dau", "start", "vi"),
        ("Jooji", "stop", "so"),
        ("ayuda", "help", "es"),
    ],
)
def test_a_keyword_is_recognised_however_it_is_typed(typed, action, language):
    found = classify(typed)
    assert found is not None and (found.action, found.language) == (action, language)


@pytest.mark.parametrize(
    "typed",
    ["stop the buses early", "stopp", "", "   ", "STOP" * 20, "<Message>STOP</Message>", "s t o p"],
)
def test_anything_else_is_not_a_keyword(typed, texting, session_factory):
    assert classify(typed) is None
    assert "<Message>" not in texting(typed or ".")
    assert opted_out(session_factory) == set()


def test_every_language_has_every_reply_and_drafts_are_marked(district):
    info = district.district
    for language in STOPPED:
        for action in ("stop", "start", "help"):
            text = reply(action, language, short_name=info.short_name, name=info.name, contact="x")
            assert "{" not in text and text.strip()
        assert all(fold(w) for w in WORDS["stop"][language])
    assert unreviewed() == ["es", "vi", "zh", "ar", "so"]  # machine-made: no reviewer yet
