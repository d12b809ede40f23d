"""After-action report: from composition to the last delivery per channel, who did what, the
failures and the retries; a pre-approved send is flagged for review."""

from __future__ import annotations

import json

import requests

from tests.conftest import submit_and_approve
from tests.delivery_stack import import_contacts

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
    assert "x: 2 deliveries" in text.stdout and "2 retries" in text.stdout  # and its reply
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


def test_a_providers_error_quoting_the_number_is_masked_but_in_a_full_export(
    stack, run, tokens, compose_closure, tmp_path, console, web_app
):
    """Twilio's "The 'To' number +1... is not a valid phone number": masked in status (CLI, API,
    console) and in the report; as it was only in a records officer's --include-recipients
    export."""
    admin = run.json("users", "add", "it")["token"]
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(f"phone,language\n+14155550100,en\n{INVALID},en\n")
    run.json("contacts", "import", str(contacts), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms,web")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "partially_sent"
    mid = str(draft["id"])

    [failure] = run.json("status", mid)["failures"]
    assert "The 'To' number +1••••••0001 is not a valid phone number" in failure["error"]
    shown = {
        "status --json": json.dumps(run.json("status", mid), ensure_ascii=False),
        "status": run("status", mid).stdout,
        "report --json": json.dumps(run.json("report", mid), ensure_ascii=False),
        "report": run("report", mid).stdout,
    }
    browser = console.signed_in("ana")
    for path in (f"/console/messages/{mid}", f"/console/messages/{mid}/status.json"):
        shown[path] = browser.get(path).get_data(as_text=True)
    api = requests.get(
        f"{web_app()}/api/v1/messages/{mid}/status",
        headers={"Authorization": f"Bearer {tokens['ana']}"},
        timeout=30,
    )
    assert api.status_code == 200, api.text
    shown["API"] = api.text
    for where, text in shown.items():
        assert "not a valid phone number" in text.replace("\\u2022", "•"), where
        assert INVALID not in text and INVALID[1:] not in text, where

    def export(out, *extra):
        result = run(
            "records", "export", "--message", mid, "--out", str(out), *extra,
            "--as", "dev", token=tokens["dev"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return "\n".join(p.read_text(encoding="utf-8") for p in out.iterdir())

    assert INVALID not in export(tmp_path / "masked")
    full = export(tmp_path / "full", "--include-recipients")
    assert f"The 'To' number {INVALID} is not a valid phone number" in full


def test_a_report_counts_every_failure_and_lists_the_first_fifty(
    stack, run, tokens, compose_closure, tmp_path
):
    phones = import_contacts(run, tmp_path, 70)  # siblings share a phone; a few opted out
    assert len(phones) > 55
    stack.sandbox.set_faults(
        [{"provider": "twilio", "fault": "status", "status": 400, "count": 55}]
    )
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "partially_sent"

    sms = run.json("report", str(draft["id"]))["channels"]["sms"]
    status = run.json("status", str(draft["id"]))
    assert sms["deliveries"] == len(phones) and sms["failed"] == 55
    assert len(sms["failures"]) == 50  # listed at most; counted in full
    assert sum(sms["statuses"].values()) == len(phones)
    assert sms["actual"]["recipients"] == len(phones) - 55
    assert sms["statuses"] == {k: v for k, v in status["deliveries"]["sms"].items() if v}
    assert sms["first_delivery"] <= sms["last_delivery"]
    assert all(p not in json.dumps(sms) for p in phones)  # masked
