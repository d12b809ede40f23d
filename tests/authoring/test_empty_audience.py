"""A text to nobody is never sent silently (issue 10, item 5): an SMS audience that matches no
phone number, or a rehearsal with no phone on the test allowlist, is a blocking finding when the
message is composed, and is refused again at approval, where the audience is frozen (the contacts
may have changed since), with the same one-line reason and nothing changed. Through the CLI and
the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import requests
from sqlalchemy import func, select

from broadcaster.core.models import Approval, Delivery, LedgerEntry, Message
from tests.delivery_stack import redis_url

CLOSURE = (
    "--var",
    "schools=lincoln-hs",
    "--var",
    "date=2026-03-03",
    "--var",
    "reason=a power outage",
    "--var",
    "reason.es=un apagón",
)
NOBODY = "school:lincoln-hs grade:11"  # the sample families: lincoln-hs has a 10th grader only


def compose(run, tokens, *extra: str) -> dict:
    return run.json(
        "compose", "school_closure", "--as", "ana", *CLOSURE, *extra, token=tokens["ana"]
    )


def import_contacts(run, tmp_path, rows: str) -> None:
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "contacts.csv"
    csv.write_text(f"phone,language,schools,grades\n{rows}", encoding="utf-8")
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)


def nobody(draft: dict) -> list[dict]:
    return [f for f in draft["findings"] if f["check"] == "no_recipients"]


def recorded(session_factory) -> tuple[int, int, int]:
    """Ledger entries, approvals and deliveries: what a refusal must leave as it was."""
    with session_factory() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(table))
            for table in (LedgerEntry, Approval, Delivery)
        )


def test_an_audience_that_matches_no_phone_blocks_at_compose(run, tokens):
    draft = compose(run, tokens, "--audience", NOBODY)
    assert draft["recipients"] == 0
    [finding] = nobody(draft)
    assert finding == {
        "check": "no_recipients",
        "severity": "block",
        "channel": "sms",
        "locale": None,
        "detail": f"no phone number matches {NOBODY}",
    }
    refused = run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and f"no phone number matches {NOBODY}" in refused.output
    # Everyone at the school is texted, or nobody but the web and social accounts hear of it.
    assert nobody(compose(run, tokens, "--audience", "school:lincoln-hs")) == []
    assert nobody(compose(run, tokens, "--channels", "x,facebook,web")) == []


def test_the_audience_is_checked_again_at_approval(run, tokens, tmp_path, session_factory):
    draft = compose(run, tokens, "--audience", "grade:2", "--channels", "sms")
    assert draft["recipients"] == 1 and nobody(draft) == []
    mid = str(draft["id"])
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    # The district's next export has no second grader left.
    import_contacts(run, tmp_path, "+14155550100,en,lincoln-hs,10\n")
    before = recorded(session_factory)
    refused = run("approve", mid, "--as", "ben", "--ack-warnings", token=tokens["ben"])
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        f"error: message {mid} cannot be approved: no phone number matches grade:2"
    )
    assert recorded(session_factory) == before
    assert run.json("status", mid)["state"] == "submitted"


def test_a_rehearsal_with_no_allowlisted_phone_blocks(run, tokens, tmp_path, district):
    config = tmp_path / "district.toml"
    text = district.source.read_text(encoding="utf-8")
    config.write_text(text.replace('phones = ["+1 951-555-0199"]', "phones = []"), "utf-8")
    (tmp_path / "roster.csv").write_text("first_name,last_name\n", encoding="utf-8")
    run.env["BROADCASTER_CONFIG"] = str(config)
    for kind, said in (("test", "a test"), ("exercise", "an exercise")):
        [finding] = nobody(compose(run, tokens, "--kind", kind))
        assert finding["detail"] == f"no phone number is on the test allowlist for {said} message"
        assert nobody(compose(run, tokens, "--kind", kind, "--channels", "web")) == []


def test_the_api_blocks_and_refuses_the_same_way(run, tokens, tmp_path, web_app, session_factory):
    run.env["BROADCASTER_BROKER_URL"] = redis_url()  # a server database wants a shared broker
    url = web_app() + "/api/v1"

    def call(method: str, path: str, user: str, body: dict | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        return requests.request(method, url + path, json=body, headers=headers, timeout=30)

    body = {
        "template": "school_closure",
        "channels": ["sms", "web"],
        "variables": {
            "schools": "lincoln-hs",
            "date": "2026-03-03",
            "reason": "a power outage",
            "reason.es": "un apagón",
        },
    }
    blocked = call("POST", "/messages", "ana", {**body, "audience": NOBODY})
    assert blocked.status_code == 201
    assert [f["detail"] for f in nobody(blocked.json())] == [f"no phone number matches {NOBODY}"]
    preview = call("POST", "/preview", "ana", {**body, "audience": NOBODY})
    assert [f["detail"] for f in nobody(preview.json())] == [f"no phone number matches {NOBODY}"]
    refused = call("POST", f"/messages/{blocked.json()['id']}/submit", "ana")
    assert refused.status_code == 403  # a policy refusal
    assert f"no phone number matches {NOBODY}" in refused.json()["error"]

    draft = call("POST", "/messages", "ana", {**body, "audience": "grade:2"}).json()
    assert nobody(draft) == []
    assert call("POST", f"/messages/{draft['id']}/submit", "ana").status_code == 200
    import_contacts(run, tmp_path, "+14155550100,en,lincoln-hs,10\n")
    before = recorded(session_factory)
    approve = call("POST", f"/messages/{draft['id']}/approve", "ben", {"ack_warnings": True})
    assert approve.status_code == 403  # a policy refusal
    assert approve.json()["error"] == (
        f"message {draft['id']} cannot be approved: no phone number matches grade:2"
    )
    assert recorded(session_factory) == before
    with session_factory() as session:
        assert session.get(Message, draft["id"]).state == "submitted"
