"""The JSON API as a client meets it: the real app on a loopback port, called with `requests`.

Every response is checked against the OpenAPI document: its status must be documented for the
operation, it must be JSON, and its body must match the documented schema exactly (no missing and
no undocumented fields).
"""

from __future__ import annotations

import re

from broadcaster.core.config import Settings
from broadcaster.web import create_app
from tests.api_client import CLOSURE, LOCKDOWN, counts
from tests.delivery_stack import texts_by_phone


def test_compose_submit_approve_reject_cancel_list_show_status(serve, tokens, run):
    api = serve()
    ana, ben = tokens["ana"], tokens["ben"]
    created = api("POST", "/messages", ana, CLOSURE)
    assert created.status_code == 201
    draft = created.json()
    assert created.headers["Location"] == f"/api/v1/messages/{draft['id']}"
    assert draft["state"] == "draft" and draft["recipients"] == 4  # the sample families
    sms_es = next(r for r in draft["renditions"] if (r["channel"], r["locale"]) == ("sms", "es"))
    assert "una tormenta invernal" in sms_es["text"] and sms_es["segments"] >= 1
    shown = api("GET", f"/messages/{draft['id']}", ana).json()
    assert shown["author"] == "ana" and shown["renditions"] == draft["renditions"]
    assert shown["variables"]["reason"]["es"] == "una tormenta invernal"

    submitted = api("POST", f"/messages/{draft['id']}/submit", ana)
    assert submitted.status_code == 200 and submitted.json()["state"] == "submitted"
    approved = api("POST", f"/messages/{draft['id']}/approve", ben, {"ack_warnings": True})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "dispatching"
    assert approved.json()["deliveries"]["web"]["queued"] == 1
    status = api("GET", f"/messages/{draft['id']}/status", ben).json()
    # The X post, and its Spanish reply waiting for it.
    assert status["state"] == "dispatching" and status["deliveries"]["x"]["queued"] == 2
    events = [
        step["event"] for step in api("GET", f"/messages/{draft['id']}", ben).json()["timeline"]
    ]
    assert events[0] == "message.composed" and "dispatch.planned" in events

    second = api("POST", "/messages", ana, CLOSURE).json()
    api("POST", f"/messages/{second['id']}/submit", ana, {})
    rejected = api("POST", f"/messages/{second['id']}/reject", ben, {"reason": "wrong date"})
    assert rejected.json()["state"] == "rejected"
    approvals = api("GET", f"/messages/{second['id']}", ana).json()["approvals"]
    assert [(a["decision"], a["by"], a["reason"]) for a in approvals] == [
        ("rejected", "ben", "wrong date")
    ]
    third = api("POST", "/messages", ana, CLOSURE).json()
    assert api("POST", f"/messages/{third['id']}/cancel", ana).json()["state"] == "cancelled"

    listed = api("GET", "/messages", ana).json()
    assert [(m["id"], m["state"]) for m in listed] == [
        (third["id"], "cancelled"),
        (second["id"], "rejected"),
        (draft["id"], "dispatching"),
    ]
    assert [m["id"] for m in api("GET", "/messages?state=rejected", ana).json()] == [second["id"]]
    # The CLI sees the same messages, and the ledger still verifies.
    assert [m["id"] for m in run.json("list")] == [m["id"] for m in listed]
    assert run("records", "verify").exit_code == 0


def test_refusals_are_403_and_change_nothing(serve, tokens, run, session_factory):
    api = serve()
    untranslated = {**CLOSURE, "variables": {**CLOSURE["variables"]}}
    del untranslated["variables"]["reason.es"]  # a warning the approver must acknowledge
    draft = api("POST", "/messages", tokens["ana"], untranslated).json()
    api("POST", f"/messages/{draft['id']}/submit", tokens["ana"])
    pat = run.json("users", "add", "pat", "--role", "author", "--role", "approver")["token"]
    own = api("POST", "/messages", pat, CLOSURE).json()
    api("POST", f"/messages/{own['id']}/submit", pat)
    before = counts(session_factory)

    refused = api("POST", f"/messages/{draft['id']}/approve", tokens["ana"], {"ack_warnings": True})
    assert refused.status_code == 403
    assert refused.json() == {"error": "ana (author) may not approve: that takes the approver role"}
    refused = api("POST", f"/messages/{draft['id']}/approve", tokens["ben"])
    assert refused.status_code == 403 and "1 warning to review" in refused.json()["error"]
    # The API names its own body field, never the command line's option.
    assert refused.json()["field"] == "ack_warnings" and "--" not in refused.json()["error"]
    assert refused.json()["error"].endswith('; send "ack_warnings": true')
    # An approver who is also an author may not approve their own message.
    refused = api("POST", f"/messages/{own['id']}/approve", pat, {"ack_warnings": True})
    assert refused.status_code == 403 and "two-person rule" in refused.json()["error"]
    # dev (records officer) may not compose; nobody acts on a message that does not exist.
    assert api("POST", "/messages", tokens["dev"], CLOSURE).status_code == 403
    missing = api("POST", "/messages/999/submit", tokens["ana"])
    assert missing.status_code == 404 and "no message 999" in missing.json()["error"]
    assert api("GET", "/messages/999/status", tokens["ana"]).status_code == 404

    assert counts(session_factory) == before
    for message in (draft, own):
        assert api("GET", f"/messages/{message['id']}", pat).json()["state"] == "submitted"


def test_no_or_a_wrong_token_is_401(serve, run, tokens, session_factory):
    # Each request from its own address, behind one proxy: wrong tokens from one address are
    # answered 429 after a few (tests/core/test_tokens.py).
    run.env["BROADCASTER_PROXY_HOPS"] = "1"
    api = serve()
    addresses = (f"198.51.100.{n}" for n in range(1, 255))
    before = counts(session_factory)
    for headers in (
        {},
        {"Authorization": "Bearer bct_not-a-token"},
        {"Authorization": f"Basic {tokens['ana']}"},
        {"Authorization": "Bearer"},
        {"Cookie": "broadcaster_session=anything"},
    ):
        for method, path, body in (
            ("POST", "/messages", CLOSURE),
            ("POST", "/preview", CLOSURE),
            ("GET", "/messages", None),
            ("POST", "/trigger", LOCKDOWN),
        ):
            sent = {**headers, "X-Forwarded-For": next(addresses)}
            response = api(method, path, body=body, headers=sent)
            assert response.status_code == 401, (headers, path)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = api("GET", "/messages", "bct_not-a-token")
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert counts(session_factory) == before
    # The scheme is case-insensitive; the document needs no token.
    ok = api("GET", "/messages", headers={"Authorization": f"bearer {tokens['ana']}"})
    assert ok.status_code == 200
    assert api("GET", "/openapi.json").json()["openapi"] == "3.1.0"


def test_preview_checks_everything_and_leaves_nothing(serve, tokens, run, session_factory):
    api = serve()
    before = counts(session_factory)
    flagged = {**CLOSURE, "variables": {**CLOSURE["variables"], "reason": "call 415-555-0199"}}
    preview = api("POST", "/preview", tokens["ana"], flagged)
    assert preview.status_code == 200
    view = preview.json()
    assert "id" not in view and "state" not in view
    assert {(r["channel"], r["locale"]) for r in view["renditions"]} >= {("x", "en"), ("sms", "es")}
    assert any(f["severity"] == "block" for f in view["findings"])  # a personal phone number
    assert view["recipients"] == 4  # the sample district's families
    assert counts(session_factory) == before
    assert api("GET", "/messages", tokens["ana"]).json() == []
    # An author's preview and a real compose render the same.
    draft = api("POST", "/messages", tokens["ana"], CLOSURE).json()
    again = api("POST", "/preview", tokens["ana"], CLOSURE).json()
    assert again["renditions"] == draft["renditions"]
    assert run("records", "verify").exit_code == 0
    assert api("POST", "/preview", tokens["dev"], CLOSURE).status_code == 403


def test_bad_requests_are_one_line_and_write_nothing(serve, tokens, session_factory):
    api = serve()
    ana = tokens["ana"]
    draft = api("POST", "/messages", ana, CLOSURE).json()
    before = counts(session_factory)
    variables = CLOSURE["variables"]
    json_type = {"Content-Type": "application/json"}
    cases = [
        (dict(data="{not json", headers=json_type), 400, "the body is not JSON"),
        (dict(data="[" * 100_000, headers=json_type), 400, "the body is not JSON"),
        (dict(data="template=school_closure"), 415, "Content-Type: application/json"),
        (dict(data=" " * (6 << 20), headers=json_type), 413, "larger than 5 MiB"),
        (dict(body=["school_closure"]), 400, "the body must be a JSON object"),
        (dict(body={"variables": variables}), 400, "missing field 'template'"),
        (dict(body={**CLOSURE, "template": 5}), 400, "template: Input should be a valid string"),
        (dict(body={**CLOSURE, "audiance": "all"}), 400, "unknown field 'audiance'"),
        (dict(body={**CLOSURE, "kind": "drill"}), 400, "kind: Input should be"),
        (dict(body={**CLOSURE, "channels": []}), 400, "channels: List should have at least 1"),
        (dict(body={**CLOSURE, "variables": {**variables, "date": 3}}), 400, "variables.date"),
        (dict(body={**CLOSURE, "template": "nope"}), 422, "no template named 'nope'"),
        (dict(body={**CLOSURE, "channels": ["fax"]}), 422, "unknown channel 'fax'"),
        (dict(body={**CLOSURE, "variables": {**variables, "colour": "red"}}), 422, "'colour'"),
        (dict(body={**CLOSURE, "variables": {**variables, "date": "someday"}}), 422, "'date'"),
        (dict(body={**CLOSURE, "audience": None}), 422, "texting or calling needs an audience"),
        (dict(body={**CLOSURE, "valid_until": "2001-01-01T08:00"}), 422, "already past"),
    ]
    for value, limit in (("x" * 6000, 400), ("x" * 300, 422), ("snow \u202e", 422)):
        body = {**CLOSURE, "variables": {**variables, "reason": value}}
        cases.append((dict(body=body), limit, "reason"))
    for request, status, says in cases:
        response = api("POST", "/messages", ana, **request)
        assert response.status_code == status, (request, response.text)
        assert says in response.json()["error"], response.json()
        assert len(response.json()["error"]) < 400
    # An unknown template: the API names the body field and the templates there are, no CLI verb.
    unknown = api("POST", "/messages", ana, body={**CLOSURE, "template": "nope"}).json()
    assert unknown["field"] == "template" and "school_closure" in unknown["choices"]
    assert "broadcaster" not in unknown["error"], unknown
    mid = draft["id"]
    assert api(
        "POST", f"/messages/{mid}/approve", tokens["ben"], {"ack_warnings": "yes"}
    ).json() == {"error": "ack_warnings: Input should be a valid boolean"}
    assert api("POST", f"/messages/{mid}/submit", ana, {"force": True}).status_code == 400
    assert api("POST", f"/messages/{mid}/reject", tokens["ben"], {}).status_code == 400
    assert api("GET", "/messages?state=lost", ana).status_code == 422
    assert api("GET", "/messages?stat=draft", ana).status_code == 400
    assert counts(session_factory) == before
    # Emoji and right-to-left text are values like any other: counted, not refused.
    arabic = "عاصفة ثلجية ❄️"
    body = {**CLOSURE, "variables": {**variables, "reason.es": arabic}}
    sms_es = next(
        r
        for r in api("POST", "/messages", ana, body).json()["renditions"]
        if (r["channel"], r["locale"]) == ("sms", "es")
    )
    assert arabic in sms_es["text"] and sms_es["encoding"] == "UCS-2"


def test_markup_in_values_is_returned_as_data(serve, tokens):
    api = serve()
    typed = "<script>alert(1)</script> {{ 7*7 }}"
    body = {**CLOSURE, "variables": {**CLOSURE["variables"], "reason": typed}}
    response = api("POST", "/messages", tokens["ana"], body)
    assert response.status_code == 201
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    texts = {(r["channel"], r["locale"]): r["text"] for r in response.json()["renditions"]}
    assert typed in texts[("sms", "en")]  # plain text stays as typed, never evaluated
    assert "&lt;script&gt;" in texts[("web", "en")] and "<script>" not in texts[("web", "en")]


def test_every_route_is_documented_and_every_documented_route_exists(serve):
    api = serve()
    app = create_app(Settings())
    routes = {
        (method.lower(), re.sub(r"<(?:[^:>]+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1")))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    served = api("GET", "/openapi.json").json()
    documented = {(method, path) for path, ops in served["paths"].items() for method in ops}
    assert routes == documented
    assert served["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def import_contacts(run, tmp_path) -> None:
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "contacts.csv"
    csv.write_text(
        "phone,language,schools\n"
        "+14155550100,en,lincoln-hs;jefferson-es\n"
        "+15005550001,en,lincoln-hs\n",  # the sandbox refuses this number for good
        encoding="utf-8",
    )
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)


def test_api_approval_and_trigger_deliver_through_the_real_stack(
    stack, serve, tokens, run, tmp_path
):
    import_contacts(run, tmp_path)
    api = serve()
    closure = {**CLOSURE, "audience": "school:jefferson-es"}
    draft = api("POST", "/messages", tokens["ana"], closure).json()
    assert draft["recipients"] == 1
    api("POST", f"/messages/{draft['id']}/submit", tokens["ana"])
    approved = api(
        "POST", f"/messages/{draft['id']}/approve", tokens["ben"], {"ack_warnings": True}
    )
    assert approved.json()["warning"] is None  # the broker took the tasks

    refused = api("POST", "/trigger", tokens["carmen"], {**LOCKDOWN, "confirm": False})
    assert refused.status_code == 422 and '"confirm": true' in refused.json()["error"]
    assert api("POST", "/trigger", tokens["ana"], LOCKDOWN).status_code == 403
    not_pre_approved = api("POST", "/trigger", tokens["carmen"], {**closure, "confirm": True})
    assert not_pre_approved.status_code == 403
    assert "not pre-approved" in not_pre_approved.json()["error"]
    triggered = api("POST", "/trigger", tokens["carmen"], LOCKDOWN)
    assert triggered.status_code == 201
    lockdown = triggered.json()["id"]
    assert triggered.headers["Location"] == f"/api/v1/messages/{lockdown}"

    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "sent"
    status = api("GET", f"/messages/{draft['id']}/status", tokens["ben"]).json()
    assert status["deliveries"]["sms"]["sent"] == 1 and status["deliveries"]["web"]["sent"] == 1
    assert stack.wait_done(lockdown)["state"] == "partially_sent"
    assert api("GET", f"/messages/{lockdown}", tokens["ben"]).json()["needs_review"] is True

    # Retry sends again only what failed: the good number gets no second lockdown text.
    retried = api("POST", f"/messages/{lockdown}/retry", tokens["carmen"])
    assert retried.status_code == 200 and retried.json()["deliveries"]["sms"]["queued"] == 1
    assert stack.wait_done(lockdown)["state"] == "partially_sent"
    received = texts_by_phone(stack.sandbox)
    assert len(received["+14155550100"]) == 2  # one closure, one lockdown
    assert len(received.get("+15005550001", [])) == 0
    assert api("POST", f"/messages/{draft['id']}/retry", tokens["ben"]).status_code == 403
    assert run("records", "verify").exit_code == 0
