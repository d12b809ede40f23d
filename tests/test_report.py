"""After-action report: from composition to the last delivery per channel, who did what, the
failures and the retries; a pre-approved send is flagged for review."""

from __future__ import annotations

from tests.conftest import submit_and_approve

INVALID = "+15005550001"  # the sandbox answers Twilio's 21211 (not a valid phone number)


def test_a_closure_with_a_failed_text_and_retried_post(
    stack, run, tokens, compose_closure, tmp_path
):
    admin = run.json("users", "add", "it")["token"]
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(f"phone,language\n+14155550100,en\n{INVALID},en\n+14155550102,es\n")
    run.json("contacts", "import", str(contacts), "--as", "it", token=admin)
    stack.sandbox.set_faults([{"provider": "x", "fault": "status", "status": 503, "count": 2}])
    draft = compose_closure()
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "partially_sent"

    report = run.json("report", str(draft["id"]))
    assert report["started"] == "composed" and report["review"] is None
    assert [(p["who"], p["did"]) for p in report["people"]][:3] == [
        ("ana", "composed"),
        ("ana", "submit"),
        ("ben", "approve"),
    ]
    assert report["approvals"][0]["by"] == "ben"
    assert report["approvals"][0]["basis"] == "second person"
    sms, x = report["channels"]["sms"], report["channels"]["x"]
    assert sms["deliveries"] == 3 and sms["failed"] == 1
    assert sms["failures"][0]["target"].endswith("0001") and "•" in sms["failures"][0]["target"]
    assert "not a valid phone number" in sms["failures"][0]["error"]
    assert x["retried"] == 2 and x["failed"] == 0 and x["first_delivery"]
    assert all(c["last_delivery"] for c in report["channels"].values())
    events = [step["event"] for step in report["timeline"]]
    assert events[0] == "message.composed" and "message.finish_partial" in events
    for channel in ("web", "x", "facebook", "sms"):
        assert events.index("message.approve") < events.index(f"{channel}: first delivery")
    assert report["durations_s"]["composition_to_last_delivery"] > 0

    text = run("report", str(draft["id"]))
    assert text.exit_code == 0
    assert "sms: 3 deliveries" in text.stdout and "failed +1" in text.stdout
    assert "x: 1 deliveries" in text.stdout and "2 retries" in text.stdout
    assert INVALID not in text.stdout + str(report)  # numbers are masked, errors too


def test_a_pre_approved_send_is_flagged_for_review(run, tokens):
    lockdown = ("--var", "school=lincoln-hs", "--audience", "school:lincoln-hs", "--yes")
    sent = run.json(
        "trigger", "lockdown", "--as", "carmen", *lockdown, "--no-follow", token=tokens["carmen"]
    )
    report = run.json("report", str(sent["id"]))
    assert report["started"] == "triggered"
    review = report["review"]
    assert review["flagged"] and review["by"] == "carmen"
    assert review["basis"].startswith("pre-approved template lockdown@")
    assert ("carmen", "approve_pre_approved") in [(p["who"], p["did"]) for p in report["people"]]
    text = run("report", str(sent["id"])).stdout
    assert "REVIEW: sent from a pre-approved template" in text

    missing = run("report", "999")
    assert missing.exit_code == 2 and "no message 999" in missing.stderr
