"""Console passwords set from the command line, and personal tokens found from the token alone."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from broadcaster.core import identity, ledger
from broadcaster.core.errors import Refused
from broadcaster.core.models import User

GOOD = "correct horse battery staple"


def test_a_user_sets_their_own_password_and_it_is_stored_hashed(run, tokens, session_factory):
    result = run("users", "passwd", "ana", input=f"{GOOD}\n{GOOD}\n", token=tokens["ana"])
    assert result.exit_code == 0, result.output
    assert "password set for ana" in result.stdout
    assert GOOD not in result.output  # never echoed
    with session_factory() as session:
        user = session.scalar(select(User).where(User.name == "ana"))
        assert user.password_hash.startswith("$argon2")
        assert identity.verify_password(session, "ana", GOOD).name == "ana"
        with pytest.raises(Refused, match="wrong user name or password"):
            identity.verify_password(session, "ana", GOOD + "!")
        with pytest.raises(Refused, match="wrong user name or password"):
            identity.verify_password(session, "nobody", GOOD)
        with pytest.raises(Refused, match="wrong user name or password"):
            identity.verify_password(session, "ben", GOOD)  # ben has no password at all
        events = [e.event for e, _ in ledger.entries_for(session, None)]
    assert "user.password_set" in events


def test_only_the_user_or_an_admin_sets_a_password(run, session_factory):
    admin = run.json("users", "add", "it")["token"]
    ana = run.json("users", "add", "ana", "--as", "it", token=admin)["token"]
    run.json("users", "add", "ben", "--as", "it", token=admin)
    refused = run("users", "passwd", "ben", "--as", "ana", input=f"{GOOD}\n{GOOD}\n", token=ana)
    assert refused.exit_code == 2 and "may not manage users" in refused.stderr
    done = run("users", "passwd", "ben", "--as", "it", input=f"{GOOD}\n{GOOD}\n", token=admin)
    assert done.exit_code == 0, done.output
    with session_factory() as session:
        assert identity.verify_password(session, "ben", GOOD).name == "ben"


@pytest.mark.parametrize(
    "password, problem",
    [("short", "12 to 1024 characters"), (" " + GOOD, "spaces"), ("x" * 2000, "12 to 1024")],
)
def test_weak_or_odd_passwords_are_refused_and_nothing_changes(
    run, tokens, session_factory, password, problem
):
    result = run("users", "passwd", "ana", input=f"{password}\n{password}\n", token=tokens["ana"])
    assert result.exit_code == 2 and problem in result.stderr
    with session_factory() as session:
        assert session.scalar(select(User.password_hash).where(User.name == "ana")) is None


def test_wrong_token_sets_no_password(run, tokens, session_factory):
    result = run("users", "passwd", "ana", input=f"{GOOD}\n{GOOD}\n", token="bct_wrong")
    assert result.exit_code == 2
    with session_factory() as session:
        assert session.scalar(select(User.password_hash).where(User.name == "ana")) is None


def test_a_bearer_token_finds_its_user(run, tokens, session_factory):
    with session_factory() as session:
        assert identity.authenticate_bearer(session, tokens["ben"]).name == "ben"
        with pytest.raises(Refused):
            identity.authenticate_bearer(session, tokens["ben"][:-1] + "x")
        with pytest.raises(Refused):
            identity.authenticate_bearer(session, "")


def test_the_application_hashes_at_the_production_cost():
    """The suite runs argon2 at its cheapest (conftest.py); a fresh process must not. The hash a
    wrong user name is checked against costs the same (it is written out in identity.py)."""
    import subprocess
    import sys

    code = (
        "from argon2 import extract_parameters, profiles; from broadcaster.core import identity; "
        "user = identity.User(name='x'); identity._issue_token(user); "
        "print(extract_parameters(user.token_hash) == profiles.RFC_9106_LOW_MEMORY, "
        "extract_parameters(identity._DUMMY_HASH) == profiles.RFC_9106_LOW_MEMORY)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.stdout.strip() == "True True", shown.stderr
