"""The two-way inbox (issue 14, item 4) over the signed inbound hook: a family's reply that is
no keyword is kept once, linked to its family and to the message it answers; forged, misaddressed
and replayed requests keep nothing; what a stranger can put in a text is made harmless; the
console shows it to the roles that may read it, masked for those that may not see numbers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import select
from twilio.request_validator import RequestValidator

from broadcaster.core import ledger
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT, load_district
from broadcaster.core.models import Contact, Delivery, InboundText, LedgerEntry, User, utcnow
from broadcaster.delivery import inbox_forward
from broadcaster.delivery.sending import Worker
from broadcaster.records import retention
from broadcaster.records.inbox import BODY_MAX
from tests.console_client import body
from tests.threads_setup import sandboxed
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


def test_forged_misaddressed_or_foreign_replies_are_refused_and_keep_nothing(
    console, session_factory, district
):
    browser = console.browser()
    sid, service, token = sms_identity(district, "district-sms")
    form = inbound_form(sid, "hello", PARENT, MessagingServiceSid=service)
    assert browser.client.post(HOOK, data=form).status_code == 403  # unsigned
    assert reply(browser, district, "hello", token="not-the-token")[0].status_code == 403
    other = inbound_form("AC" + "9" * 32, "hello", PARENT, MessagingServiceSid=service)
    signature = RequestValidator(token).compute_signature(HOOK, other)
    refused = browser.client.post(HOOK, data=other, headers={"X-Twilio-Signature": signature})
    assert refused.status_code == 403  # another account's SID
    wrong_to = inbound_form(sid, "hello", PARENT, To="+15005550999")  # not the account's number
    signature = RequestValidator(token).compute_signature(HOOK, wrong_to)
    refused = browser.client.post(HOOK, data=wrong_to, headers={"X-Twilio-Signature": signature})
    assert refused.status_code == 403
    with session_factory() as session:
        assert session.scalars(select(InboundText)).all() == []


def test_unicode_tricks_markup_and_a_huge_body_are_kept_harmless(
    console, session_factory, district
):
    trick = "pay \u202eevil\u202c now\x00\x1b <script>alert(1)</script> \u200bok"
    huge = trick + "x" * 5000
    response, _ = reply(console.browser(), district, huge)
    assert response.status_code == 200
    [text] = kept(session_factory)
    assert text.truncated and len(text.body) == BODY_MAX
    for bad in ("\u202e", "\u202c", "\x00", "\x1b"):
        assert bad not in text.body
    assert text.body.startswith("pay \ufffdevil\ufffd now\ufffd\ufffd <script>")
    page = body(console.signed_in("dev").get("/console/inbox"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "longer than 1,600 characters" in page


def test_the_console_masks_numbers_for_staff_without_the_right_and_refuses_authors(
    console, run, session_factory, district
):
    reply(console.browser(), district, "Running late today", "+14155550123")
    ben = body(console.signed_in("ben").get("/console/inbox"))  # approver: masked
    assert "+1••••••0123" in ben and "+14155550123" not in ben
    assert "Running late today" in ben and 'href="/console/inbox"' in ben
    dev = body(console.signed_in("dev").get("/console/inbox"))  # records officer: the number
    assert "+14155550123" in dev
    ana = console.signed_in("ana")  # author: no access
    assert ana.get("/console/inbox").status_code == 403
    assert 'href="/console/inbox"' not in body(ana.get("/console/"))
    listed = run.json("inbox", "--as", "ben", token=console.tokens["ben"])
    assert [(t["from"], t["body"]) for t in listed] == [("+1••••••0123", "Running late today")]
    refused = run("inbox", "--as", "ana", token=console.tokens["ana"])
    assert refused.exit_code == 2


def forwarding_district(tmp_path) -> Path:
    """The sample district whose (sandbox-served) staff rooms forward the inbox."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    text = text.replace(
        'settings = { labels = "principals transport" }\n',
        'settings = { labels = "principals transport" }\nforward_inbox = true\n',
        1,
    )
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_a_reply_is_forwarded_to_the_staff_rooms_that_ask_for_it(
    console, run, session_factory, district, tmp_path
):
    reply(console.browser(), district, "not forwarded: no account asks")
    with session_factory() as session:
        assert not session.scalars(
            select(LedgerEntry).where(LedgerEntry.event == "inbox.forward_queued")
        ).all()
    config = forwarding_district(tmp_path)
    with sandboxed(run) as sandbox:
        run.env.update(
            BROADCASTER_CONFIG=str(config), BROADCASTER_PUBLIC_URL="https://alerts.example"
        )
        console.app()
        hook = "https://alerts.example/hooks/twilio/inbound"
        sid, service, token = sms_identity(district, "district-sms")
        form = inbound_form(sid, "My daughter has a fever", PARENT, MessagingServiceSid=service)
        signature = RequestValidator(token).compute_signature(hook, form)
        browser = console.browser()
        answer = browser.client.post(HOOK, data=form, headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200
        targets = ["apprise:staff-chat:principals", "apprise:staff-chat:transport"]
        with session_factory() as session:
            entries = ledger.entries_for(session, None, ("inbox.forward_queued",))  # type: ignore[arg-type]
            queued = [payload for _, payload in entries]
        assert queued == [{"text": form["MessageSid"], "targets": targets}]
        worker = Worker(settings=run.settings(), district=load_district(config))
        outcome = inbox_forward.forward(worker, form["MessageSid"], targets, 1)
        assert outcome is not None and outcome.sent == targets
        posts = sandbox.posts("staff")
        assert len(posts) == 2
        for post in posts:
            assert "+1••••••0100" in post["message"] and PARENT not in post["message"]
            assert "fever" not in post["message"]  # the text stays in the console
            assert (
                f"https://alerts.example/console/inbox#text-{form['MessageSid']}" in post["message"]
            )
        assert inbox_forward.forward(worker, form["MessageSid"], targets, 1) is None  # once


def test_a_worker_posts_the_forward_once_the_reply_is_kept(
    stack, console, run, district, tmp_path, session_factory
):
    """The one real-worker test: the hook's commit rings the broker, a worker posts."""
    run.env["BROADCASTER_CONFIG"] = str(forwarding_district(tmp_path))
    console.app()  # with the stack's broker and sandbox
    stack.start_worker()
    reply(console.browser(), district, "Is school open tomorrow?")
    stack.wait_for(lambda: len(stack.sandbox.posts("staff")) == 2, timeout=90)
    [text] = kept(session_factory)
    stack.wait_for(lambda: kept(session_factory)[0].forwarded_at is not None, timeout=30)
    assert all("Is school open" not in p["message"] for p in stack.sandbox.posts("staff"))
    assert "+1••••••0100" in stack.sandbox.posts("staff")[0]["message"]
    with session_factory() as session:
        entries = ledger.entries_for(session, None, ("inbox.forwarded",))  # type: ignore[arg-type]
    assert [(p["text"], len(p["sent"])) for _, p in entries] == [(text.message_sid, 2)]


def test_retention_purges_an_old_kept_text_unless_a_hold_covers_its_message(
    console, run, tokens, compose_closure, tmp_path, session_factory, district
):
    message_id = texted(run, tokens, compose_closure, tmp_path, session_factory)
    browser = console.browser()
    reply(browser, district, "answering the closure")
    reply(browser, district, "about nothing", "+14155550188")
    later = utcnow() + dt.timedelta(days=365 * 3)  # past the sample's 2 years
    hold = run.json(
        "records",
        "hold",
        "--message",
        str(message_id),
        "--reason",
        "a complaint",
        "--as",
        "dev",
        token=tokens["dev"],
    )
    # With numbers kept 30 days: after 60, the stranger's number goes, its text stays.
    short = district.retention.model_copy(update={"sms_recipient_days": 30})
    with session_factory() as session:
        dev = session.scalar(select(User).where(User.name == "dev"))
        soon = utcnow() + dt.timedelta(days=60)
        plan = retention.purge(
            session, district.model_copy(update={"retention": short}), dev, now=soon
        )
        assert (len(plan.inbox_numbers), len(plan.inbox_held)) == (1, 1)
    assert {t.phone: t.body for t in kept(session_factory)} == {
        PARENT: "answering the closure",
        None: "about nothing",
    }
    with session_factory() as session:
        dev = session.scalar(select(User).where(User.name == "dev"))
        plan = retention.purge(session, district, dev, now=later)
        assert (len(plan.inbox_content), len(plan.inbox_held)) == (1, 1)
        assert plan.record is not None  # the destruction record counts them
    texts = {t.phone: t.body for t in kept(session_factory)}
    assert texts == {PARENT: "answering the closure"}  # held; the other destroyed
    with session_factory() as session:
        gone = session.scalars(select(InboundText).where(InboundText.body.is_(None))).all()
        assert [(t.phone, t.household) for t in gone] == [(None, None)]
    run("records", "release", str(hold["hold"]), "--as", "dev", token=tokens["dev"])
    with session_factory() as session:
        dev = session.scalar(select(User).where(User.name == "dev"))
        assert len(retention.purge(session, district, dev, now=later).inbox_content) == 1
    assert kept(session_factory) == []


def test_an_export_includes_the_kept_texts_redacted(
    console, run, tokens, compose_closure, tmp_path, session_factory, district
):
    message_id = texted(run, tokens, compose_closure, tmp_path, session_factory)
    reply(console.browser(), district, "call me at +14155550177 please")
    out = tmp_path / "export"
    result = run(
        "records",
        "export",
        "--message",
        str(message_id),
        "--out",
        str(out),
        "--as",
        "dev",
        token=tokens["dev"],
    )
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in (out / "inbox.jsonl").read_text().splitlines()]
    assert row["from"] == "+1••••••0100" and row["answers"] == message_id
    assert row["body"] == "call me at +1••••••0177 please"
    assert PARENT not in (out / "inbox.csv").read_text(encoding="utf-8")
