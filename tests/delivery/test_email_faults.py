"""E-mails survive a killed worker and a storm of SMTP faults with nothing lost or duplicated,
like texts and calls (issue 13, done when): a closure e-mailed to 60 families by real Celery
workers through the sandbox's SMTP server, which refuses some messages for now (451), holds its
reply to others past the adapter's timeout after taking them, slows down (421) and hangs up at
DATA, while the first worker is SIGKILLed in the middle."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from broadcaster.core import db, ledger
from tests.conftest import ON_POSTGRESQL, closure_vars, submit_and_approve
from tests.delivery.test_reach_e2e import district_file

pytestmark = [pytest.mark.slow, ON_POSTGRESQL]

FAMILIES = 60


def email_families(run, tmp_path: Path) -> dict[str, str]:
    """FAMILIES families with an e-mail address only; returns address -> language."""
    expected: dict[str, str] = {}
    path = tmp_path / "families.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["household", "email", "language", "schools", "routes", "grades"])
        for i in range(FAMILIES):
            address, language = f"parent{i:02d}@example.org", "es" if i % 3 == 0 else "en"
            writer.writerow([f"E-{i:02d}", address, language, "lincoln-hs", "12", "10"])
            expected[address] = language
    admin = run.json("users", "add", "it")["token"]
    run.json("contacts", "import", str(path), "--as", "it", token=admin)
    return expected


def test_emails_survive_faults_and_a_killed_worker_with_nothing_lost_or_duplicated(
    stack, run, tokens, tmp_path
):
    district_file(run, tmp_path)  # e-mails at 500 a second, not the default 10
    expected = email_families(run, tmp_path)
    stack.sandbox.set_faults(
        [
            {"provider": "email", "fault": "status", "status": 451, "rate": 0.2, "seed": 3},
            {
                "provider": "email",
                "fault": "timeout_after_accept",
                "hold_ms": 12_000,
                "rate": 0.1,
                "seed": 5,
            },
            {"provider": "email", "fault": "rate_limit", "retry_after_s": 1, "count": 3},
            {"provider": "email", "fault": "drop", "count": 2},
        ]
    )
    draft = run.json(
        "compose", "school_closure", "--as", "ana", "--channels", "email",
        *closure_vars("a winter storm", "una tormenta invernal"), token=tokens["ana"],
    )  # fmt: skip
    subjects = {
        r["locale"]: r["text"].partition("\n\n")[0].removeprefix("Subject: ")
        for r in draft["renditions"]
        if r["channel"] == "email"
    }
    submit_and_approve(run, tokens, draft)
    doomed = stack.start_worker(concurrency=4)
    stack.wait_for(lambda: stack.sandbox.post_count("email") >= 5)
    stack.kill(doomed)
    assert stack.sandbox.post_count("email") < FAMILIES  # killed with work left
    stack.start_worker(concurrency=4)
    view = stack.wait_done(draft["id"], timeout=240)
    assert view["state"] == "sent", view
    assert {k: n for k, n in view["deliveries"]["email"].items() if n} == {"sent": FAMILIES}

    kept = stack.sandbox.smtp_messages()
    received = Counter(r for m in kept for r in m["rcpt_tos"])
    assert set(received) == set(expected)  # nothing lost
    assert {a: n for a, n in received.items() if n > 1} == {}  # nothing duplicated
    for message in kept:
        (address,) = message["rcpt_tos"]
        assert message["subject"] == subjects[expected[address]]
        assert message["text"] and message["html"]
    # The storm did happen: every kind of fault was served at least once.
    faults = Counter(r["fault"] for r in stack.sandbox.requests("email") if r.get("fault"))
    assert set(faults) == {"status", "timeout_after_accept", "rate_limit", "drop"}, faults
    # The killed worker's claims lapsed and the sweep settled them (looked up, or sent again).
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        hows = Counter(
            str(payload.get("how"))
            for _, payload in ledger.entries_for(session, draft["id"], events=("delivery.",))
            if payload
        )
    assert any("claim lapsed" in how for how in hows), hows
    assert run("records", "verify").exit_code == 0
