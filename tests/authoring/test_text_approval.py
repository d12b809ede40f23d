"""Approval by text reply, the services (issue 14, item 5): what a reply is, the codes (bound to
one message and one approver, single-use, 15 minutes on a controlled clock), the approval it
makes (the CLI's, basis "text reply"), the refusals that do not say which part was wrong, and
the lock after five wrong replies that only an admin lifts. The signed web hook and the real
workers: tests/web/test_text_approval_hook.py."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from broadcaster.authoring import text_approval
from broadcaster.authoring.text_approval import LOCKED, REFUSED, parse
from broadcaster.core import db, ledger
from broadcaster.core.models import Approval, ApprovalCode, ApproverPhone, Message, User, utcnow
from broadcaster.delivery import approvals, approver_phones
from tests.conftest import closure_vars
from tests.text_approval_setup import ANA, BEN, CARMEN, approval_district, verify_phones

# Suite time: the approval and the refusals run on both databases, the rest on SQLite.
ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    ("typed", "approve", "code", "ok"),
    [
        ("YES 4821", True, "4821", False),
        ("yes 4821", True, "4821", False),
        ("Yes 4821 ok", True, "4821", True),
        (" YES 4821 OK. ", True, "4821", True),
        ("ＹＥＳ　４８２１", True, "4821", False),  # full-width, as some keyboards type it
        ("YES 4\u200b821", True, "4821", False),  # an invisible character: dropped
        ("YES ٤٨٢١", True, "4821", False),  # Arabic-Indic digits
        ("no 4821", False, "4821", False),
    ],
)
def test_a_reply_is_read_however_it_is_typed(typed, approve, code, ok):
    assert parse(typed) == text_approval.Reply(approve, code, ok)


@pytest.mark.parametrize(
    "typed",
    [
        "YES",
        "4821",
        "YES4821",
        "YES 4821 NO 4821",  # two answers: ambiguous
        "YES 4821 please",
        "YES 48 21",
        "Y E S 4821",
        "\u0423\u0415\u0405 4821",  # Cyrillic letters that look like YES
        "YES 4821 OKAY",
        "START",
        "YES " + "1" * 50,  # huge
        "",
    ],
)
def test_anything_else_is_not_a_reply(typed):
    assert parse(typed) is None


def submit(run, tokens, warned: bool = True) -> int:
    """ana's closure of all schools, texted to Lincoln High's families, submitted; with
    `warned` its reason is left untranslated (a warning to acknowledge)."""
    spanish = None if warned else "una tormenta invernal"
    args = closure_vars("a winter storm", spanish, audience="school:lincoln-hs")
    draft = run.json(
        "compose",
        "school_closure",
        "--as",
        "ana",
        *args,
        "--channels",
        "sms,web",
        token=tokens["ana"],
    )
    assert run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
    return draft["id"]


@pytest.fixture
def waiting(run, tokens, tmp_path):
    """A closure with a warning by ana, submitted; ben, ana and carmen have verified phones.
    Returns (district, message id, a session maker with the settings a hook's session has)."""
    district = approval_district(run, tmp_path)
    url = run.env["BROADCASTER_DATABASE_URL"]
    verify_phones(url)
    mid = submit(run, tokens)

    def scope():
        return db.session_scope(url, settings=run.settings())

    return district, mid, scope


def issue(scope, message_id: int, name: str, now: dt.datetime | None = None) -> str:
    with scope() as session:
        user = session.scalars(select(User).where(User.name == name)).one()
        return approver_phones.issue_code(session, message_id, user.id, now)


def reply(scope, district, phone: str, body: str, now: dt.datetime | None = None) -> str | None:
    with scope() as session:
        return text_approval.answer(session, district, phone, body, now)


def state(scope, message_id: int) -> str:
    with scope() as session:
        return session.get_one(Message, message_id).state


@ON_SQLITE
def test_the_notice_quotes_the_texts_counts_and_warnings_and_asks_for_the_code(waiting):
    district, mid, scope = waiting
    with scope() as session:
        message = session.get_one(Message, mid)
        assert approvals.approvers(session, district, message.author) == ["ben", "carmen"]
        text = approvals.reply_notice(session, district, message, "4821")
        sms = next(r.text for r in message.renditions if r.channel == "sms")
        warned = {f.check for f in message.findings if f.severity == "warn"}
    assert text.startswith(f"Riverside USD: approve message {mid}, School closure, by ana?")
    assert sms in text
    assert "Reaches 1 family by sms, web." in text
    assert warned and all(check in text for check in warned)
    assert text.endswith("Reply YES 4821 OK to send, NO 4821 to reject.")


def test_a_code_approves_once_as_its_approver_with_the_clis_rules(waiting):
    district, mid, scope = waiting
    code = issue(scope, mid, "ben")
    # The message has warnings: YES alone is not enough, and spends nothing.
    hint = reply(scope, district, BEN, f"YES {code}")
    assert hint is not None and f"YES {code} OK" in hint
    assert state(scope, mid) == "submitted"
    answer = reply(scope, district, BEN, f"yes {code} ok")
    assert answer == f"Approved: message {mid}, School closure, is going out now."
    assert state(scope, mid) in ("approved", "dispatching", "sent")
    with scope() as session:
        [approval] = session.scalars(select(Approval).where(Approval.message_id == mid)).all()
        assert (approval.user.name, approval.decision, approval.basis) == (
            "ben",
            "approved",
            "text reply",
        )
        assert approval.acknowledged_warnings
        entries = {e.event: p for e, p in ledger.entries_for(session, mid)}
    assert entries["approval.recorded"]["basis"] == "text reply"
    assert entries["message.approve"]["acknowledged_warnings"]
    # Used: the same code again is refused, like any wrong code.
    assert reply(scope, district, BEN, f"YES {code} OK") == REFUSED


@ON_SQLITE
def test_without_warnings_yes_alone_approves(waiting, run, tokens):
    district, _, scope = waiting
    mid = submit(run, tokens, warned=False)
    code = issue(scope, mid, "ben")
    assert reply(scope, district, BEN, f"YES {code}").startswith(f"Approved: message {mid}")


@ON_SQLITE
def test_no_rejects_with_the_reason_and_basis(waiting):
    district, mid, scope = waiting
    code = issue(scope, mid, "carmen")
    assert reply(scope, district, CARMEN, f"NO {code}") == (
        f"Rejected: message {mid}, School closure. The author will see why."
    )
    with scope() as session:
        [approval] = session.scalars(select(Approval).where(Approval.message_id == mid)).all()
        assert (approval.decision, approval.basis, approval.reason) == (
            "rejected",
            "text reply",
            "rejected by text reply",
        )
        assert session.get_one(Message, mid).state == "rejected"


def test_wrong_expired_anothers_and_the_authors_replies_are_refused_alike(waiting):
    district, mid, scope = waiting
    now = utcnow()
    ben = issue(scope, mid, "ben", now)
    carmen = issue(scope, mid, "carmen", now)
    wrong = f"{(int(ben) + 1) % 10000:04d}"
    refusals = [
        reply(scope, district, BEN, f"YES {wrong} OK", now),  # wrong
        reply(scope, district, BEN, f"YES {ben} OK", now + dt.timedelta(minutes=15)),  # expired
        reply(scope, district, BEN, f"YES {carmen} OK", now),  # another approver's (ben's phone)
        reply(scope, district, ANA, f"YES {ben} OK", now),  # the author's own phone
    ]
    # Refused with one answer that says not which part.
    assert refusals == [REFUSED] * 4
    assert state(scope, mid) == "submitted"
    # A number that is no verified approval phone: not a reply at all (the hook carries on).
    assert reply(scope, district, "+14155550100", f"YES {ben} OK", now) is None
    with scope() as session:
        refused = ledger.entries_for(session, None, ("text_approval.refused",))
        rows = {r.user_id: r.wrong_replies for r in session.scalars(select(ApproverPhone))}
    assert len(refused) == 4
    assert all(BEN not in str(p) and ANA not in str(p) for _, p in refused)  # masked
    assert sorted(rows.values()) == [0, 1, 3]  # ben 3, ana 1, carmen 0
    # The right code inside its 15 minutes still approves: refusals spent nothing.
    answer = reply(scope, district, BEN, f"YES {ben} OK", now + dt.timedelta(minutes=14))
    assert answer is not None and answer.startswith("Approved")


@ON_SQLITE
def test_five_wrong_replies_turn_text_approval_off_until_an_admin_turns_it_on(waiting, run, tokens):
    district, mid, scope = waiting
    code = issue(scope, mid, "ben")
    wrong = f"{(int(code) + 1) % 10000:04d}"
    answers = [reply(scope, district, BEN, f"YES {wrong}") for _ in range(5)]
    assert answers == [REFUSED] * 4 + [LOCKED]
    assert reply(scope, district, BEN, f"YES {code} OK") == LOCKED  # even the right code
    assert state(scope, mid) == "submitted"
    with scope() as session:
        [(_, disabled)] = ledger.entries_for(session, None, ("text_approval.disabled",))
        ben = session.scalars(select(User).where(User.name == "ben")).one()
        phone = approver_phones.verified(session, ben.id)
        assert phone is not None and phone.locked_at is not None
        message = session.get_one(Message, mid)
        # Its next notice is the plain one, without a code.
        to, text = approvals._text_to(session, district, message, "ben", "plain")
    assert disabled == {"name": "ben", "phone": "+1••••••0150", "wrong_replies": 5}
    assert (to, text) == (BEN, "plain")
    # Only an admin turns it back on.
    refused = run("users", "phone-unlock", "ben", "--as", "ben", token=tokens["ben"])
    assert refused.exit_code == 2 and "may not manage users" in refused.output
    admin = run.json("users", "add", "it")["token"]
    result = run("users", "phone-unlock", "ben", "--as", "it", token=admin)
    assert result.exit_code == 0, result.output
    again = run("users", "phone-unlock", "ben", "--as", "it", token=admin)
    assert again.exit_code == 2 and "not turned off" in again.output
    assert reply(scope, district, BEN, f"YES {code} OK").startswith("Approved")
    with scope() as session:
        assert ledger.entries_for(session, None, ("text_approval.unlocked",))


@ON_SQLITE
def test_a_decision_resets_the_count_and_kills_every_code_of_the_message(waiting):
    district, mid, scope = waiting
    ben, carmen = issue(scope, mid, "ben"), issue(scope, mid, "carmen")
    wrong = f"{(int(ben) + 1) % 10000:04d}"
    if wrong == carmen:
        wrong = f"{(int(ben) + 2) % 10000:04d}"
    assert reply(scope, district, BEN, f"YES {wrong}") == REFUSED
    assert reply(scope, district, CARMEN, f"NO {carmen}").startswith("Rejected")
    assert reply(scope, district, BEN, f"YES {ben} OK") == REFUSED  # its message is decided
    with scope() as session:
        counts = {r.phone: r.wrong_replies for r in session.scalars(select(ApproverPhone))}
    assert counts[CARMEN] == 0 and counts[BEN] == 2


@ON_SQLITE
def test_codes_are_random_hashed_and_unlike_the_approvers_other_live_codes(waiting):
    _, mid, scope = waiting
    codes = [issue(scope, mid, "ben") for _ in range(20)]
    assert len(set(codes)) == 20 and all(len(c) == 4 and c.isdigit() for c in codes)
    with scope() as session:
        stored = [
            c.code_hash
            for u in session.scalars(select(User))
            for c in approver_phones.live_codes(session, u.id, utcnow())
        ]
    assert stored and all(h.startswith("$argon2") for h in stored)
    assert not any(code in h for code in codes for h in stored)
    # A new code clears the approver's dead ones (expired here); live ones stay.
    issue(scope, mid, "ben", utcnow() - dt.timedelta(minutes=20))
    issue(scope, mid, "ben")
    with scope() as session:
        rows = session.scalars(select(ApprovalCode)).all()
    assert len(rows) == 21 and all(r.expires_at > utcnow() for r in rows)
