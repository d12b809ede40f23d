"""Approval by text reply over the signed Twilio hook (issue 14, item 5; the done-when line):
end to end with real workers, the author submits, the approver's phone (the sandbox) gets the
text with its code, the signed reply approves and the message goes out; and each refusal:
wrong code, expired code, another approver's code, the author's own phone, a used code and a
replay (the same MessageSid). An approver's reply is never kept in the families' inbox."""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from broadcaster.authoring.text_approval import LOCKED, REFUSED
from broadcaster.core import db, ledger
from broadcaster.core.models import Approval, ApproverPhone, InboundText, Message, User, utcnow
from broadcaster.delivery import approver_phones
from tests.authoring.test_text_approval import submit
from tests.conftest import ON_POSTGRESQL
from tests.delivery.test_apprise_delivery import _worker_up
from tests.text_approval_setup import ANA, BEN, CARMEN, approval_district, verify_phones
from tests.web.test_twilio_hooks import inbound_form, signed_post, sms_identity

EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'
FAMILY = "+19515550101"  # Lincoln High's one family in the sample contacts


def texter(web_app, district):
    """Text the district's number; returns (TwiML answer, the signed form, to post again)."""
    url = web_app()
    sid, service, token = sms_identity(district, "district-sms")
    hook = f"{url}/hooks/twilio/inbound"

    def text(body: str, phone: str, form: dict | None = None) -> tuple[str, dict]:
        form = form or inbound_form(sid, body, phone, MessagingServiceSid=service)
        response = signed_post(hook, form, token, hook)
        assert response.status_code == 200
        return response.text, form

    return text


def said(twiml: str) -> str:
    found = re.search(r"<Message>(.*)</Message>", twiml, re.S)
    assert found, twiml
    return found[1]


def issue(url: str, message_id: int, name: str, now: dt.datetime | None = None) -> str:
    with db.session_scope(url) as session:
        user = session.scalars(select(User).where(User.name == name)).one()
        return approver_phones.issue_code(session, message_id, user.id, now)


def test_each_wrong_reply_is_refused_alike_and_a_replay_changes_nothing(
    run, tokens, tmp_path, web_app
):
    district = approval_district(run, tmp_path)
    url = run.env["BROADCASTER_DATABASE_URL"]
    verify_phones(url)
    mid = submit(run, tokens)
    ben, carmen = issue(url, mid, "ben"), issue(url, mid, "carmen")
    old = issue(url, mid, "ben", utcnow() - dt.timedelta(minutes=15, seconds=1))
    wrong = next(f"{n:04d}" for n in range(10000) if f"{n:04d}" not in (ben, carmen, old))
    text = texter(web_app, district)

    first, form = text(f"YES {wrong} OK", BEN)  # wrong
    assert said(first) == REFUSED
    assert text("", BEN, form)[0] == EMPTY  # the replay: answered empty, not counted again
    refusals = [
        text(f"YES {old} OK", BEN)[0],  # expired
        text(f"YES {carmen} OK", BEN)[0],  # another approver's code, from this phone
        text(f"YES {ben} OK", ANA)[0],  # the author's own phone, with the approver's code
    ]
    assert [said(r) for r in refusals] == [REFUSED] * 3
    # Not an approval phone: no reply here; the family inbox keeps it.
    assert text(f"YES {ben} OK", "+14155550100")[0] == EMPTY
    with db.session_scope(url) as session:
        assert session.get_one(Message, mid).state == "submitted"
        wrongs = {r.phone: r.wrong_replies for r in session.scalars(select(ApproverPhone))}
        kept = session.scalars(select(InboundText.phone).where(InboundText.body.is_not(None)))
        assert list(kept) == ["+14155550100"]  # the approvers' replies are not in the inbox
    assert wrongs == {BEN: 3, ANA: 1, CARMEN: 0}

    approved, form = text(f"Yes {ben} ok", BEN)
    assert said(approved) == f"Approved: message {mid}, School closure, is going out now."
    assert text("", BEN, form)[0] == EMPTY  # the approving text replayed
    assert said(text(f"YES {ben} OK", BEN)[0]) == REFUSED  # used
    with db.session_scope(url) as session:
        [approval] = session.scalars(select(Approval).where(Approval.message_id == mid)).all()
        assert (approval.user.name, approval.basis) == ("ben", "text reply")
        assert session.get_one(Message, mid).state != "submitted"


@ON_POSTGRESQL
def test_reply_yes_from_the_approvers_phone_sends_the_message(
    stack, run, tokens, tmp_path, web_app
):
    """The done-when line, with real workers: registered and confirmed over the CLI, texted on
    submission, approved by a signed reply, sent."""
    district = approval_district(run, tmp_path)
    url = run.env["BROADCASTER_DATABASE_URL"]
    assert run("users", "phone", "ben", BEN, "--as", "ben", token=tokens["ben"]).exit_code == 0
    [verify] = stack.sandbox.posts("twilio")
    code = re.search(r"this phone is (\d{6})\.", verify["body"])[1]
    confirmed = run("users", "phone", "ben", "--code", code, "--as", "ben", token=tokens["ben"])
    assert confirmed.exit_code == 0, confirmed.output
    stack.start_worker()
    stack.wait_for(lambda: _worker_up(run), timeout=90)

    mid = submit(run, tokens)

    def notice() -> dict | None:
        found = [t for t in stack.sandbox.posts("twilio") if "Reply YES" in t["body"]]
        return found[0] if found else None

    stack.wait_for(lambda: notice() is not None)
    texted = notice()
    assert texted["to"] == BEN
    with db.session_scope(url) as session:
        sms = next(r.text for r in session.get_one(Message, mid).renditions if r.channel == "sms")
    assert f"message {mid}, School closure, by ana?" in texted["body"] and sms in texted["body"]
    reply_code = re.search(r"Reply YES (\d{4}) OK to send, NO \1 to reject\.$", texted["body"])[1]

    text = texter(web_app, district)
    answer, form = text(f"YES {reply_code} OK", BEN)
    assert said(answer).startswith(f"Approved: message {mid}")
    view = stack.wait_done(mid)
    assert view["state"] == "sent", view
    assert FAMILY in [t["to"] for t in stack.sandbox.posts("twilio")]
    assert text("", BEN, form)[0] == EMPTY  # a replay of the approval does nothing more
    with db.session_scope(url) as session:
        recorded = ledger.entries_for(session, mid, ("approval.recorded",))
    assert [(p["by"], p["basis"]) for _, p in recorded] == [("ben", "text reply")]
    assert run("records", "verify").exit_code == 0


@ON_POSTGRESQL
def test_racing_wrong_replies_get_no_more_than_five_guesses(run, tokens, tmp_path, web_app):
    """Twelve wrong replies at once from an approver's phone (a spoofed number, say): each is
    counted before its code is checked, so four are refused, the fifth locks, the rest find the
    lock; the count is exactly five."""
    district = approval_district(run, tmp_path)
    url = run.env["BROADCASTER_DATABASE_URL"]
    verify_phones(url, ("ben",))
    mid = submit(run, tokens)
    code = issue(url, mid, "ben")
    wrong = f"{(int(code) + 1) % 10000:04d}"
    text = texter(web_app, district)
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: said(text(f"YES {wrong}", BEN)[0]), range(12)))
    assert answers.count(REFUSED) == 4
    assert answers.count(LOCKED) == 8
    with db.session_scope(url) as session:
        [row] = session.scalars(select(ApproverPhone)).all()
        assert row.wrong_replies == 5 and row.locked_at is not None
        assert session.get_one(Message, mid).state == "submitted"
