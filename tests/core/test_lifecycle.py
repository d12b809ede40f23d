"""The approval gate and the state machine, through the real CLI on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from broadcaster.authoring import messages
from broadcaster.core.errors import Refused
from broadcaster.core.lifecycle import STATES, TRANSITIONS
from broadcaster.core.models import LedgerEntry, Message, User
from broadcaster.core.rehearsals import ensure_allowed
from tests.conftest import CARMEN_LOCKDOWN, closure_vars


def ledger_size(session_factory) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(LedgerEntry))


def test_compose_submit_approve(run, tokens, compose_closure):
    draft = compose_closure()
    assert draft["state"] == "draft"
    assert {(r["channel"], r["locale"]) for r in draft["renditions"]} == {
        (c, loc) for c in ("x", "facebook", "sms", "web") for loc in ("en", "es")
    }
    assert draft["findings"] == []
    assert run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
    result = run("approve", str(draft["id"]), "--as", "ben", token=tokens["ben"])
    assert result.exit_code == 0, result.output
    shown = run.json("show", str(draft["id"]))
    assert shown["state"] == "dispatching"  # approval is the go; no worker runs in this test
    assert [a["by"] for a in shown["approvals"]] == ["ben"]
    assert [step["event"] for step in shown["timeline"]] == [
        "message.composed",
        "message.submit",
        "message.approve",
        "approval.recorded",
        "message.dispatch",
        "dispatch.planned",
    ]


def test_compose_json_has_the_promised_shape(compose_closure):
    draft = compose_closure()
    assert {"id", "state", "renditions", "findings"} <= set(draft)
    for r in draft["renditions"]:
        assert {"channel", "locale", "text", "length"} <= set(r)
        if r["channel"] == "x":
            assert isinstance(r["weighted_length"], int)
        if r["channel"] == "sms":
            assert r["encoding"] in ("GSM-7", "UCS-2")
            assert r["segments"] >= 1 and isinstance(r["ucs2_chars"], list)


def test_self_approval_is_refused_even_for_an_approver(run, tokens, db_url, session_factory):
    # An approver who is also an author composes, submits, then tries to approve their own.
    token = run.json("users", "add", "pat", "--role", "author", "--role", "approver")["token"]
    draft = run.json(
        "compose",
        "school_closure",
        "--as",
        "pat",
        *closure_vars("snow", "nieve"),
        token=token,
    )
    run("submit", str(draft["id"]), "--as", "pat", token=token)
    before = ledger_size(session_factory)
    result = run("approve", str(draft["id"]), "--as", "pat", token=token)
    assert result.exit_code == 2
    assert "two-person rule" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert run.json("show", str(draft["id"]))["state"] == "submitted"
    assert ledger_size(session_factory) == before


def test_an_author_cannot_approve_at_all(run, tokens, compose_closure):
    other = run.json("users", "add", "olga", "--role", "author")["token"]
    draft = compose_closure()
    run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    result = run("approve", str(draft["id"]), "--as", "olga", token=other)
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == "error: olga (author) may not approve: that takes the approver role"
    )
    assert run.json("show", str(draft["id"]))["state"] == "submitted"


def test_a_wrong_token_is_refused_and_changes_nothing(
    run, tokens, compose_closure, session_factory
):
    draft = compose_closure()
    run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    before = ledger_size(session_factory)
    for token in (tokens["ana"], "bct_wrong", ""):
        result = run("approve", str(draft["id"]), "--as", "ben", token=token)
        assert result.exit_code == 2, result.output
    assert ledger_size(session_factory) == before
    assert run.json("show", str(draft["id"]))["state"] == "submitted"


def test_a_blocking_finding_stops_submission(run, tokens, session_factory):
    draft = run.json(
        "compose",
        "school_closure",
        "--as",
        "ana",
        *closure_vars("Maria Gonzalez's illness"),
        token=tokens["ana"],
    )
    assert ("student_name", "block") in {(f["check"], f["severity"]) for f in draft["findings"]}
    before = ledger_size(session_factory)
    result = run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    assert result.exit_code == 2
    assert "blocking finding" in result.stderr and "student_name" in result.stderr
    assert run.json("show", str(draft["id"]))["state"] == "draft"
    assert ledger_size(session_factory) == before


def test_warnings_must_be_acknowledged_by_the_approver(run, tokens):
    draft = run.json(
        "compose",
        "school_closure",
        "--as",
        "ana",
        *closure_vars("snow (see http://weather.example.com)"),
        token=tokens["ana"],
    )
    checks = {f["check"] for f in draft["findings"] if f["severity"] == "warn"}
    assert {"link_https", "link_allowlist", "untranslated"} <= checks
    run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    refused = run("approve", str(draft["id"]), "--as", "ben", token=tokens["ben"])
    assert refused.exit_code == 2 and "--ack-warnings" in refused.stderr
    ok = run("approve", str(draft["id"]), "--as", "ben", "--ack-warnings", token=tokens["ben"])
    assert ok.exit_code == 0
    approval = run.json("show", str(draft["id"]))["approvals"][0]
    assert len(approval["acknowledged_warnings"]) == len(
        [f for f in draft["findings"] if f["severity"] == "warn"]
    )


def test_reject_needs_a_reason_and_is_final(run, tokens, compose_closure):
    draft = compose_closure()
    mid = str(draft["id"])
    run("submit", mid, "--as", "ana", token=tokens["ana"])
    assert run("reject", mid, "--as", "ben", "--reason", "  ", token=tokens["ben"]).exit_code == 2
    assert (
        run("reject", mid, "--as", "ben", "--reason", "wrong date", token=tokens["ben"]).exit_code
        == 0
    )
    shown = run.json("show", mid)
    assert shown["state"] == "rejected" and shown["approvals"][0]["reason"] == "wrong date"
    assert run("approve", mid, "--as", "ben", token=tokens["ben"]).exit_code == 2


def test_cancel_by_author_or_approver_only(run, tokens, compose_closure):
    other = run.json("users", "add", "olga", "--role", "author")["token"]
    first, second = compose_closure(), compose_closure()
    assert run("cancel", str(first["id"]), "--as", "olga", token=other).exit_code == 2
    assert run("cancel", str(first["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
    assert run("cancel", str(second["id"]), "--as", "ben", token=tokens["ben"]).exit_code == 0
    assert run.json("list", "--state", "cancelled")[0]["state"] == "cancelled"
    assert run("submit", str(first["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 2


def test_pre_approved_template_goes_at_once_for_an_incident_commander(
    run, tokens, session_factory, district, catalog
):
    lockdown = run.json("compose", *CARMEN_LOCKDOWN, token=tokens["carmen"])
    with session_factory() as session:
        message = session.get(Message, lockdown["id"])
        carmen = session.scalar(select(User).where(User.name == "carmen"))
        messages.approve_pre_approved(session, district, catalog, message, carmen)
    shown = run.json("show", str(lockdown["id"]))
    assert shown["state"] == "approved"
    assert shown["pre_approved"] is True and shown["needs_review"] is True
    version = catalog.get("lockdown").version
    assert shown["approvals"][0]["basis"] == f"pre-approved template lockdown@{version}"
    assert shown["approvals"][0]["by"] == "carmen"


def test_pre_approval_is_refused_for_other_templates_and_other_roles(
    run, tokens, session_factory, district, catalog
):
    closure = run.json(
        "compose",
        "school_closure",
        "--as",
        "carmen",
        *closure_vars("snow"),
        token=tokens["carmen"],
    )
    lockdown = run.json(
        "compose",
        "lockdown",
        "--as",
        "ana",
        "--var",
        "school=lincoln-hs",
        "--audience",
        "school:lincoln-hs",
        token=tokens["ana"],
    )
    with session_factory() as session:
        carmen = session.scalar(select(User).where(User.name == "carmen"))
        ana = session.scalar(select(User).where(User.name == "ana"))
        with pytest.raises(Refused, match="not pre-approved"):
            messages.approve_pre_approved(
                session, district, catalog, session.get(Message, closure["id"]), carmen
            )
        with pytest.raises(
            Refused, match="ana \\(author\\) may not send a pre-approved template at once"
        ):
            messages.approve_pre_approved(
                session, district, catalog, session.get(Message, lockdown["id"]), ana
            )


def test_a_test_message_only_targets_the_test_allowlist(run, tokens, compose_closure, district):
    allow = set(district.test_allowlist.accounts)
    for kind in ("test", "exercise"):
        draft = compose_closure("--kind", kind)
        targets = {t["account"] for t in draft["targets"]}
        assert targets and targets <= allow
        assert {t["channel"] for t in draft["targets"]} == {"x", "facebook", "sms", "web"}
        assert all(
            r["text"].startswith(("[TEST", '<p class="kind-notice">')) for r in draft["renditions"]
        )
    actual = compose_closure()
    assert not {t["account"] for t in actual["targets"]} & allow
    with pytest.raises(Refused, match="not on the test allowlist"):
        ensure_allowed(district, "test", "district-x")
    ensure_allowed(district, "test", "test-x")
    ensure_allowed(district, "actual", "district-x")


def test_a_test_message_with_no_allowlisted_account_is_blocked(run, tokens, tmp_path, district):
    config = tmp_path / "district.toml"
    text = (district.source).read_text(encoding="utf-8")
    config.write_text(text.replace('"test-x", ', ""), encoding="utf-8")
    (tmp_path / "roster.csv").write_text("first_name,last_name\n", encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)
    draft = run.json(
        "compose",
        "school_closure",
        "--as",
        "ana",
        "--kind",
        "test",
        *closure_vars("snow"),
        token=tokens["ana"],
    )
    assert {
        "check": "no_target",
        "severity": "block",
        "channel": "x",
        "locale": None,
        "detail": "no x account on the test allowlist for a test message",
    } in draft["findings"]
    assert all(t["channel"] != "x" for t in draft["targets"])


def test_the_transition_table_is_the_only_way(run, tokens, compose_closure):
    """Every (action, state) pair not in the table is refused with exit 2."""
    draft = compose_closure()
    mid = str(draft["id"])
    run("submit", mid, "--as", "ana", token=tokens["ana"])
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 2
    run("approve", mid, "--as", "ben", token=tokens["ben"])
    for verb, user in (("submit", "ana"), ("approve", "ben")):
        result = run(verb, mid, "--as", user, token=tokens[user])
        assert result.exit_code == 2 and "is dispatching" in result.stderr
    assert {t.source for t in TRANSITIONS} | {t.target for t in TRANSITIONS} <= set(STATES)


def test_unknown_message_and_bad_options(run, tokens):
    assert run("show", "999").exit_code == 2
    result = run("compose", "school_closure", "--as", "ana", "--var", "nokey", token=tokens["ana"])
    assert (
        result.exit_code == 2 and result.stderr.strip() == "error: --var 'nokey': write KEY=VALUE"
    )
    result = run(
        "compose", "school_closure", "--as", "ana", "--channels", "tiktok", token=tokens["ana"]
    )
    assert result.exit_code == 2 and "unknown channel 'tiktok'" in result.stderr
    result = run(
        "compose",
        "school_closure",
        "--as",
        "ben",
        *closure_vars("x"),
        token=tokens["ben"],
    )
    assert result.exit_code == 2 and "may not compose" in result.stderr
    assert run("list", "--state", "nope").exit_code == 2
