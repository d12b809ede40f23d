"""What each front door says when a request lacks something: the same refusal from the same
service, worded for the person at that door. The command line names its option, the API its
body field and the console the form field by its label; a missing choice lists the choices;
counts say their noun in the right number."""

from __future__ import annotations

import html

from tests.api_client import CLOSURE
from tests.conftest import closure_vars
from tests.console_client import body

# An early dismissal without its choice variable `after_school` (canceled or open).
DISMISSAL = {
    "schools": "lincoln-hs",
    "date": "2026-03-03",
    "dismissal_time": "12:30",
    "reason": "a power outage",
}
LABEL = "After-school activities and child care: canceled, or open as usual"


def test_the_cli_names_the_option_and_the_choices(run, tokens):
    pairs = [arg for name, value in DISMISSAL.items() for arg in ("--var", f"{name}={value}")]
    refused = run("compose", "early_dismissal", "--as", "ana", *pairs, "--audience", "all",
                  token=tokens["ana"])  # fmt: skip
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        "error: missing variable 'after_school'; add --var after_school=canceled|open"
    )
    # A school is a choice too: the district's schools, by the slugs the command line takes.
    refused = run("trigger", "lockdown", "--as", "carmen", "--yes", token=tokens["carmen"])
    assert refused.exit_code == 2 and refused.stderr.strip() == (
        "error: missing variable 'school'; "
        "add --var school=lincoln-hs|washington-ms|jefferson-es|roosevelt-es"
    )
    # A count of one in the singular, and the option that acknowledges it.
    closure = closure_vars("snow")  # its reason is not translated: one warning
    draft = run.json("compose", "school_closure", "--as", "ana", *closure, token=tokens["ana"])
    run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    refused = run("approve", str(draft["id"]), "--as", "ben", token=tokens["ben"])
    assert refused.exit_code == 2
    assert f"message {draft['id']} has 1 warning to review" in refused.stderr
    assert refused.stderr.strip().endswith("; add --ack-warnings")


def test_the_api_names_its_body_field_and_the_choices(serve, tokens):
    api = serve()
    asked = {"template": "early_dismissal", "variables": DISMISSAL, "audience": "all"}
    refused = api("POST", "/messages", tokens["ana"], asked)
    assert refused.status_code == 422
    assert refused.json() == {
        "error": "missing variable 'after_school'; "
        'send "variables": {"after_school": "canceled"} (one of "canceled", "open")',
        "field": "variables.after_school",
        "choices": ["canceled", "open"],
    }
    # A count of one: "1 warning", not "1 warning(s)"; no option of the command line.
    untranslated = {**CLOSURE, "variables": {**CLOSURE["variables"]}}
    del untranslated["variables"]["reason.es"]
    draft = api("POST", "/messages", tokens["ana"], untranslated).json()
    api("POST", f"/messages/{draft['id']}/submit", tokens["ana"])
    warned = api("POST", f"/messages/{draft['id']}/approve", tokens["ben"]).json()
    assert warned["error"].startswith(f"message {draft['id']} has 1 warning to review")
    assert "--" not in warned["error"] and "Spanish messages" in warned["error"]


def test_the_console_names_the_field_by_its_label_and_the_choices(console):
    ana = console.signed_in("ana")
    ana.get("/console/compose?template=early_dismissal")
    form = {**DISMISSAL, "template": "early_dismissal", "channels": ["sms", "web"],
            "locales": ["en"], "audience": "school:lincoln-hs", "kind": "actual",
            "csrf_token": ana.token}  # fmt: skip
    refused = ana.client.post("/console/compose", data=form)
    shown = html.unescape(body(refused))
    assert refused.status_code == 400 and "--var" not in shown
    assert f"missing variable 'after_school'; choose canceled or open in “{LABEL}”" in shown
    # The audience count says one family, one number (a count of one in the singular).
    preview = ana.client.post(
        "/console/compose/preview",
        data={**form, "after_school": "open"},
        headers={"Accept": "application/json", "X-CSRFToken": ana.token},
    )
    assert preview.get_json()["audience"]["text"] == "1 family: 1 number texted."


def test_the_incident_page_lists_the_schools_by_their_names(console):
    carmen = console.signed_in("carmen")
    carmen.get("/console/incident/lockdown")
    form = {"school": "", "confirm": "yes", "csrf_token": carmen.token}
    refused = carmen.post("/console/incident/lockdown/send", form)
    assert refused.status_code == 400
    assert (
        "missing variable 'school'; choose Lincoln High School, Washington Middle School, "
        "Jefferson Elementary School, or Roosevelt Elementary School in “School in lockdown”"
    ) in html.unescape(body(refused))
