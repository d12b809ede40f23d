"""The two-way inbox (issue 14, item 4) over the signed inbound hook: a family's reply that is
no keyword is kept once, linked to its family and to the message it answers; forged, misaddressed
and replayed requests keep nothing; what a stranger can put in a text is made harmless; the
console shows it to the roles that may read it, masked for those that may not see numbers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from twilio.request_validator import RequestValidator

from broadcaster.core.models import Contact, Delivery, InboundText, LedgerEntry, utcnow
from tests.console_client import body
from tests.web.test_twilio_hooks import dispatched_texts, inbound_form, sms_identity

HOOK = "http://localhost/hooks/twilio/inbound"  # as the test client calls it
PARENT = "+14155550100"


def reply(browser, district, text: str, phone: str = PARENT, token: str | None = None, **extra):
    """A reply from `phone`, signed as Twilio signs it; returns (response, form)."""
    sid, service, real = sms_identity(district, "district-sms")
    form = inbound_form(sid, text, phone, MessagingServiceSid=service, **extra)
    signature = RequestValidator(token or real).compute_signature(HOOK, form)
    response = browser.client.post(HOOK, data=form, headers={"X-Twilio-Signature": signature})
    return response, form


def kept(session_factory) -> list[InboundText]:
    with session_factory() as session:
        rows = session.scalars(select(InboundText).where(InboundText.body.is_not(None))).all()
        session.expunge_all()
        return list(rows)


def texted(run, tokens, compose_closure, tmp_path, session_factory) -> int:
    """A closure texted to three parents, recorded sent an hour ago; returns its id."""
    dispatched_texts(run, tokens, compose_closure, tmp_path)
    with session_factory() as session:
        for delivery in session.scalars(select(Delivery).where(Delivery.channel == "sms")):
            delivery.status, delivery.sent_at = "sent", utcnow() - dt.timedelta(hours=1)
        return session.scalar(select(Delivery.message_id))


def test_a_reply_is_kept_once_linked_to_its_family_and_the_message(
    console, run, tokens, compose_closure, tmp_path, session_factory, district
):
    message_id = texted(run, tokens, compose_closure, tmp_path, session_factory)
    browser = console.browser()
    response, form = reply(browser, district, "Is the bus running tomorrow?")
    assert response.status_code == 200 and "<Message>" not in body(response)
    [text] = kept(session_factory)
    with session_factory() as session:
        family = session.scalar(select(Contact.household).where(Contact.phone == PARENT))
    assert (text.phone, text.household, text.message_id) == (PARENT, family, message_id)
    assert text.body == "Is the bus running tomorrow?" and not text.truncated
    assert text.account == "district-sms"
    # The same signed request again: answered, kept once.
    signature = RequestValidator(sms_identity(district, "district-sms")[2]).compute_signature(
        HOOK, form
    )
    again = browser.client.post(HOOK, data=form, headers={"X-Twilio-Signature": signature})
    assert again.status_code == 200
    assert len(kept(session_factory)) == 1
    # A number nobody texted: kept, answering nothing, in no family.
    reply(browser, district, "who is this?", "+14155550188")
    stranger = next(t for t in kept(session_factory) if t.phone == "+14155550188")
    assert stranger.message_id is None and stranger.household is None
    with session_factory() as session:
        events = session.scalars(select(LedgerEntry.event).where(LedgerEntry.event == "inbox.kept"))
        assert len(list(events)) == 2
