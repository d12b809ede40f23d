"""`broadcaster users phone`: an approver's phone for approval by text reply (issue 14, item 5),
registered with a code texted to it (by the provider sandbox) and confirmed with that code; by
the user or an admin only; bad numbers, wrong and expired codes refused with exit code 2."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from broadcaster.core import db, ledger
from broadcaster.core.models import ApproverPhone, utcnow
from provider_sandbox import Sandbox
from tests.text_approval_setup import BEN, CARMEN, approval_district

# Suite time: the registration runs on both databases, the refusals on SQLite.
ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def texting(run, tokens, tmp_path):
    """The approval district with the sandbox taking its texts; returns the sandbox."""
    approval_district(run, tmp_path)
    with Sandbox(port=0) as sandbox:
        run.env["BROADCASTER_SANDBOX_URL"] = sandbox.url
        yield sandbox


def texted_code(sandbox, phone: str) -> str:
    [text] = [t for t in sandbox.posts("twilio") if t["to"] == phone][-1:]
    found = re.search(r"this phone is (\d{6})\.", text["body"])
    assert found, text["body"]
    return found[1]


def phones(run) -> dict[int, ApproverPhone]:
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        rows = session.scalars(select(ApproverPhone)).all()
        session.expunge_all()
    return {r.user_id: r for r in rows}


def test_an_approver_registers_and_confirms_their_phone(texting, run, tokens):
    result = run("users", "phone", "ben", "+1 951-555-0150", "--as", "ben", token=tokens["ben"])
    assert result.exit_code == 0, result.output
    assert "code texted to +1••••••0150" in result.output and BEN not in result.output
    code = texted_code(texting, BEN)
    [row] = phones(run).values()
    assert row.phone == BEN and row.verified_at is None  # not trusted yet
    assert row.code_hash and code not in row.code_hash  # hashed at rest
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    refused = run("users", "phone", "ben", "--code", wrong, "--as", "ben", token=tokens["ben"])
    assert refused.exit_code == 2 and "wrong code" in refused.output
    assert phones(run)[row.user_id].code_tries == 1  # counted, though refused
    done = run("users", "phone", "ben", "--code", code, "--as", "ben", token=tokens["ben"])
    assert done.exit_code == 0, done.output
    assert phones(run)[row.user_id].verified_at is not None
    again = run("users", "phone", "ben", "--code", code, "--as", "ben", token=tokens["ben"])
    assert again.exit_code == 2 and "no phone waiting for a code" in again.output  # used
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        entries = ledger.entries_for(session, None, ("user.phone_",))
    assert [(e.event, p["phone"]) for e, p in entries] == [
        ("user.phone_registered", "+1••••••0150"),
        ("user.phone_verified", "+1••••••0150"),
    ]


@ON_SQLITE
def test_an_expired_code_and_five_wrong_ones_are_refused(texting, run, tokens):
    assert run("users", "phone", "ben", BEN, "--as", "ben", token=tokens["ben"]).exit_code == 0
    code = texted_code(texting, BEN)
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:  # 15 minutes on
        session.execute(
            update(ApproverPhone).values(code_expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    expired = run("users", "phone", "ben", "--code", code, "--as", "ben", token=tokens["ben"])
    assert expired.exit_code == 2 and "expired" in expired.output
    assert run("users", "phone", "ben", BEN, "--as", "ben", token=tokens["ben"]).exit_code == 0
    code = texted_code(texting, BEN)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    outputs = [
        run("users", "phone", "ben", "--code", wrong, "--as", "ben", token=tokens["ben"])
        for _ in range(5)
    ]
    assert all(r.exit_code == 2 for r in outputs)
    assert "too many times" in outputs[-1].output
    late = run("users", "phone", "ben", "--code", code, "--as", "ben", token=tokens["ben"])
    assert late.exit_code == 2  # the right code, after five wrong ones
    assert all(r.verified_at is None for r in phones(run).values())


@ON_SQLITE
def test_only_an_admin_registers_another_users_phone(texting, run, tokens):
    refused = run("users", "phone", "carmen", CARMEN, "--as", "ben", token=tokens["ben"])
    assert refused.exit_code == 2 and "may not manage users" in refused.output
    assert phones(run) == {} and texting.posts("twilio") == []  # nothing written, nothing sent
    admin = run.json("users", "add", "it")["token"]
    result = run("users", "phone", "carmen", CARMEN, "--as", "it", token=admin)
    assert result.exit_code == 0, result.output
    code = texted_code(texting, CARMEN)
    # Confirming is the user's or an admin's too.
    other = run("users", "phone", "carmen", "--code", code, "--as", "ben", token=tokens["ben"])
    assert other.exit_code == 2
    mine = run("users", "phone", "carmen", "--code", code, "--as", "carmen", token=tokens["carmen"])
    assert mine.exit_code == 0, mine.output


@ON_SQLITE
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("ben", "call me"), "is not a phone number"),
        (("ben", "+1 951 555 0150\u202e"), "is not a phone number"),  # a direction mark
        (("ben", "+1 951 555 O150"), "is not a phone number"),  # a letter O
        (("ben", "+1 555"), "is not a phone number"),
        (("ben", "+1" + "9" * 40), "is not a phone number"),  # huge
        (("ben",), "give the number"),
        (("ben", BEN, "--code", "123456"), "give the number"),
        (("dev", "+19515550153", "--as", "dev"), "may not approve"),  # a records officer
    ],
)
def test_bad_input_is_one_line_and_exit_2(texting, run, tokens, args, says):
    user = args[args.index("--as") + 1] if "--as" in args else "ben"
    extra = () if "--as" in args else ("--as", "ben")
    result = run("users", "phone", *args, *extra, token=tokens[user])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert phones(run) == {} and texting.posts("twilio") == []


@ON_SQLITE
def test_a_number_is_one_persons(texting, run, tokens):
    assert run("users", "phone", "ben", BEN, "--as", "ben", token=tokens["ben"]).exit_code == 0
    taken = run("users", "phone", "carmen", BEN, "--as", "carmen", token=tokens["carmen"])
    assert taken.exit_code == 2 and "another user's approval phone" in taken.output
