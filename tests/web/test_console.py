"""The staff console, through Flask's test client and over real HTTP on loopback: sign-in, CSRF,
compose with its live preview, the approval gate, escaping, the contacts import and live delivery
progress. Sign-in throttling and single sign-on have modules of their own."""

from __future__ import annotations

import html
import io
import re
import time
from typing import Any

import requests
from sqlalchemy import func, select

from broadcaster.core import contacts
from broadcaster.core.models import Approval, Contact, LedgerEntry, Message
from tests.console_client import PASSWORD, Browser, body, csrf, login_error
from tests.web_server import serving

SCRIPT = "<script>alert(1)</script>"


def count(session_factory, model: type) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def closure_form(browser: Browser, reason: str = "a winter storm", **extra: Any) -> dict:
    """The compose form as a person fills it in for a closure of two schools."""
    form: dict[str, Any] = {
        "template": "school_closure",
        "schools": ["lincoln-hs", "jefferson-es"],
        "date": "2026-03-03",
        "reason": reason,
        "channels": ["x", "facebook", "sms", "web"],
        "locales": ["en", "es"],
        "audience": "all",
        "kind": "actual",
        "csrf_token": browser.token,
    }
    return {**form, **extra}


def compose_draft(browser: Browser, **extra: Any) -> int:
    browser.get("/console/compose?template=school_closure")
    response = browser.client.post("/console/compose", data=closure_form(browser, **extra))
    assert response.status_code == 302, body(response)
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def submitted(browser: Browser, **extra: Any) -> int:
    message_id = compose_draft(browser, **extra)
    assert browser.post(f"/console/messages/{message_id}/submit").status_code == 302
    return message_id


def state_of(session_factory, message_id: int) -> str:
    with session_factory() as session:
        return session.get(Message, message_id).state


# --- sign-in ---------------------------------------------------------------------------------


def test_password_sign_in_sign_out_and_a_new_password(console, run, tokens):
    console.set_password("ana")  # through the CLI
    browser = console.browser()
    assert browser.get("/console/").headers["Location"] == "/console/login?next=/console/"
    page = body(browser.get("/console/login"))
    assert '<label for="username">User name</label>' in page
    assert '<label for="password">Password</label>' in page
    assert browser.login("ana").status_code == 302
    page = body(browser.get("/console/"))
    assert "ana (author)" in page and "<h1>Dashboard</h1>" in page
    assert 'href="/console/compose"' in page and 'href="/console/contacts"' not in page
    # The same cookie, copied elsewhere, stops working once ana signs out.
    copy = console.browser()
    copy.client.set_cookie(
        "broadcaster_session", browser.client.get_cookie("broadcaster_session").value
    )
    assert copy.get("/console/").status_code == 200
    assert browser.post("/console/logout").status_code == 302
    assert browser.get("/console/").status_code == 302
    assert copy.get("/console/").status_code == 302
    # A new password (set with the CLI) ends the sessions signed in with the old one.
    browser = console.signed_in("ana")
    console.set_password("ana", "another long passphrase")
    assert browser.get("/console/").status_code == 302
    assert console.browser().login("ana", PASSWORD).status_code == 403
    assert console.browser().login("ana", "another long passphrase").status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_answer(console):
    console.set_password("ana")
    wrong = console.browser().login("ana", "not the password at all")
    unknown = console.browser().login("zed", "not the password at all")
    no_password = console.browser().login("ben", "not the password at all")  # none set
    answers = {(r.status_code, login_error(body(r))) for r in (wrong, unknown, no_password)}
    assert answers == {(403, "Wrong user name or password.")}


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(console, session_factory):
    console.set_password("ana")
    anonymous = console.browser()
    response = anonymous.post("/console/login", {"username": "ana", "password": PASSWORD}, False)
    assert response.status_code == 400
    ana = console.signed_in("ana")
    ana.get("/console/compose?template=school_closure")
    form = closure_form(ana)
    del form["csrf_token"]
    response = ana.client.post("/console/compose", data=form)
    assert response.status_code == 400
    assert "did not come from this console" in body(response)
    form["csrf_token"] = "forged-" + ana.token[7:]
    assert ana.client.post("/console/compose", data=form).status_code == 400
    assert count(session_factory, Message) == 0
    assert ana.post("/console/logout", with_csrf=False).status_code == 400
    assert ana.get("/console/").status_code == 200  # still signed in
    # A sign-in link only ever leads to a console page.
    browser = console.browser()
    browser.get("/console/login")
    response = browser.post(
        "/console/login",
        {"username": "ana", "password": PASSWORD, "next": "//evil.example/console/"},
    )
    assert response.headers["Location"] == "/console/"


# --- compose ---------------------------------------------------------------------------------


def test_compose_form_creates_the_same_draft_as_the_cli(console, compose_closure, session_factory):
    ana = console.signed_in("ana")
    chooser = body(ana.get("/console/compose"))
    assert 'href="/console/compose?template=school_closure"' in chooser
    page = body(ana.get("/console/compose?template=school_closure"))
    for field_id, label in (
        ("var-date", "Date of the closure (required)"),
        ("var-reason-es", "Reason, short (e.g. &#34;a power outage&#34;) (Spanish)"),
        ("audience", "Who is texted (SMS audience)"),
        ("valid-until", "Valid until (optional)"),
        ("channel-sms", "SMS"),
        ("locale-es", "Spanish"),
        ("kind-exercise", "Exercise: test accounts and test phones only"),
    ):
        assert f'<label for="{field_id}">{label}</label>' in page
    assert "<legend>Schools closed (or all) (required)</legend>" in page

    # Errors: shown beside the field they are about, with what was typed; nothing saved.
    refused = ana.client.post("/console/compose", data=closure_form(ana, date="2026-13-45"))
    assert refused.status_code == 400
    page = body(refused)
    assert 'aria-describedby="var-date-hint var-date-error" aria-invalid="true"' in page
    assert re.search(r'id="var-date-error">[^<]*not a date', page)
    assert 'value="2026-13-45"' in page
    refused = ana.client.post("/console/compose", data=closure_form(ana, channels=[]))
    assert refused.status_code == 400 and "choose at least one channel" in body(refused)
    assert count(session_factory, Message) == 0

    message_id = compose_draft(ana, **{"reason.es": "una tormenta invernal"})
    expected = compose_closure()
    with session_factory() as session:
        message = session.get(Message, message_id)
        assert (message.state, message.author.name, message.audience) == ("draft", "ana", "all")
        got = [(r.channel, r.locale, r.text) for r in message.renditions]
    assert len(got) == 8
    assert got == [(r["channel"], r["locale"], r["text"]) for r in expected["renditions"]]
    page = body(ana.get(f"/console/messages/{message_id}"))
    assert "Submit for approval" in page and 'id="message-state">draft<' in page

    # An approver may not compose: the page says so and the server refuses the form.
    ben = console.signed_in("ben")
    assert ben.get("/console/compose").status_code == 403
    assert 'href="/console/compose"' not in body(ben.get("/console/"))
    assert ben.client.post("/console/compose", data=closure_form(ben)).status_code == 403
    assert count(session_factory, Message) == 2


def test_live_preview_returns_counts_and_findings_and_saves_nothing(console, session_factory):
    ana = console.signed_in("ana")
    ana.get("/console/compose?template=school_closure")
    before = (count(session_factory, Message), count(session_factory, LedgerEntry))

    def preview(**extra: Any) -> Any:
        return ana.client.post(
            "/console/compose/preview",
            data=closure_form(ana, **extra),
            headers={"Accept": "application/json", "X-CSRFToken": ana.token},
        )

    response = preview(details="Student S1234567 may pick up a coat at the office.")
    assert response.status_code == 200
    shown = response.get_json()
    by_channel = {(r["channel"], r["locale"]): r for r in shown["renditions"]}
    assert len(by_channel) == 8
    assert re.fullmatch(r"\d+/280 weighted characters", by_channel["x", "en"]["counts"])
    assert re.fullmatch(r"[2-9] segments, (GSM-7|UCS-2).*", by_channel["sms", "es"]["counts"])
    assert by_channel["facebook", "en"]["counts"].endswith("/63,206 characters")
    assert by_channel["x", "es"]["goes_to"] == "reply thread on @RiversideUSD"
    assert any(n.startswith("Español: draft translation") for n in shown["notices"])
    checks = {(f["check"], f["severity"]) for f in shown["findings"]}
    assert ("untranslated", "warn") in checks
    assert any(severity == "block" for _, severity in checks)  # the student ID
    assert shown["blocking"] >= 1 and shown["warnings"] >= 1
    # The sample district's four families (conftest's `families`).
    assert shown["audience"] == {"count": 4, "text": "4 families: 4 numbers texted."}

    missing = preview(date="")
    assert missing.status_code == 400
    assert (missing.get_json()["field"], missing.get_json()["target"]) == ("date", "var-date")
    assert (count(session_factory, Message), count(session_factory, LedgerEntry)) == before


# --- the approval gate -----------------------------------------------------------------------


def test_nobody_approves_their_own_message(console, run, session_factory):
    admin = run.json("users", "add", "it")["token"]
    zoe = run.json(
        "users",
        "add",
        "zoe",
        "--role",
        "author",
        "--role",
        "approver",
        "--as",
        "it",
        token=admin,
    )
    console.tokens["zoe"] = zoe["token"]
    zoe = console.signed_in("zoe")
    message_id = submitted(zoe, **{"reason.es": "una tormenta invernal"})
    queue = body(zoe.get("/console/approvals"))
    assert f'id="message-{message_id}"' in queue
    assert "You wrote this message" in queue and "Approve and send" not in queue
    ana = console.signed_in("ana")
    before = count(session_factory, LedgerEntry)
    forged = zoe.post(f"/console/messages/{message_id}/approve", {"ack_warnings": "yes"})
    assert forged.status_code == 403 and "two-person rule" in body(forged)
    # ana is not an approver at all.
    assert "Approve and send" not in body(ana.get("/console/approvals"))
    forged = ana.post(f"/console/messages/{message_id}/approve", {"ack_warnings": "yes"})
    assert forged.status_code == 403
    assert state_of(session_factory, message_id) == "submitted"
    assert count(session_factory, Approval) == 0
    assert count(session_factory, LedgerEntry) == before


def test_approver_acknowledges_warnings_to_approve_and_gives_a_reason_to_reject(
    console, session_factory
):
    ana = console.signed_in("ana")
    warned = submitted(ana)  # the reason is not translated: a warning
    other = submitted(ana, **{"reason.es": "una tormenta invernal"})
    ben = console.signed_in("ben")
    assert "Awaiting approval (2)" in body(ben.get("/console/"))
    queue = body(ben.get("/console/approvals"))
    assert f'<label for="ack-{warned}" class="inline">' in queue
    assert f'<label for="reason-{other}">' in queue and f'id="ack-{other}"' not in queue

    refused = ben.post(f"/console/messages/{warned}/approve")
    assert refused.status_code == 403 and "warning" in body(refused)
    assert state_of(session_factory, warned) == "submitted"
    approved = ben.post(f"/console/messages/{warned}/approve", {"ack_warnings": "yes"})
    assert approved.status_code == 302
    assert state_of(session_factory, warned) == "dispatching"
    with session_factory() as session:
        approval = session.scalars(select(Approval)).one()
        assert approval.user.name == "ben" and approval.acknowledged_warnings
    dashboard = body(ben.get("/console/"))  # no worker runs here: the deliveries wait
    active = dashboard.split('id="active-alerts"')[1].split("</table>")[0]
    assert f"/console/messages/{warned}" in active and "dispatching" in active
    in_flight = dashboard.split('id="in-flight"')[1].split("</table>")[0]
    assert (
        f"Message {warned}</a></td>\n          <td>Web site</td>\n          <td>1</td>" in in_flight
    )

    refused = ben.post(f"/console/messages/{other}/reject", {"reason": "   "})
    assert refused.status_code == 400 and "reason" in body(refused)
    assert state_of(session_factory, other) == "submitted"
    rejected = ben.post(f"/console/messages/{other}/reject", {"reason": "Wrong date"})
    assert rejected.status_code == 302
    assert state_of(session_factory, other) == "rejected"
    assert 'Reason: <span class="reason">Wrong date</span>' in body(
        ana.get(f"/console/messages/{other}")
    )


def test_user_written_values_are_escaped_everywhere(console, session_factory):
    escaped = html.escape(SCRIPT)
    ana = console.signed_in("ana")
    ana.get("/console/compose?template=school_closure")
    # The compose page shown again with an error keeps the value, escaped.
    page = body(ana.client.post("/console/compose", data=closure_form(ana, SCRIPT, date="")))
    assert SCRIPT not in page and f'value="{escaped}"' in page
    # The live preview returns it as data in JSON, for console.js to show with textContent.
    preview = ana.client.post(
        "/console/compose/preview",
        data=closure_form(ana, SCRIPT),
        headers={"Accept": "application/json", "X-CSRFToken": ana.token},
    )
    assert preview.mimetype == "application/json"
    assert any(SCRIPT in r["text"] for r in preview.get_json()["renditions"])
    message_id = submitted(ana, reason=SCRIPT)
    ben = console.signed_in("ben")
    shown = {"/console/approvals": ben.get("/console/approvals")}
    ben.post(f"/console/messages/{message_id}/reject", {"reason": SCRIPT})  # shown as the reason
    shown["message page"] = ben.get(f"/console/messages/{message_id}")
    for path, response in shown.items():
        assert SCRIPT not in body(response) and escaped in body(response), path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


# --- contacts ----------------------------------------------------------------------------------


def test_contacts_import_is_for_admins_and_all_or_nothing(console, run, session_factory):
    console.tokens["it"] = run.json("users", "add", "it")["token"]
    good = "phone,language,schools\n+14155550100,en,lincoln-hs\n+14155550101,es,jefferson-es\n"
    ben = console.signed_in("ben")
    assert ben.get("/console/contacts").status_code == 403
    assert 'href="/console/contacts"' not in body(ben.get("/console/"))
    refused = ben.post("/console/contacts", {"file": (io.BytesIO(good.encode()), "c.csv")})
    assert refused.status_code == 403
    assert count(session_factory, Contact) == 6  # the sample families' rows, untouched

    it = console.signed_in("it")
    assert '<label for="contacts-file">Contacts CSV file</label>' in body(
        it.get("/console/contacts")
    )
    done = it.post("/console/contacts", {"file": (io.BytesIO(good.encode()), "contacts.csv")})
    assert done.status_code == 302
    assert "Imported 2 rows" in body(it.get("/console/contacts"))
    bad = good + "not-a-phone,en,lincoln-hs\n"
    refused = it.post("/console/contacts", {"file": (io.BytesIO(bad.encode()), "export.csv")})
    assert refused.status_code == 400
    error = re.search(r'id="import-error">([^<]*)<', body(refused))[1]
    assert "export.csv" in error and "line 4" in error
    assert 'aria-describedby="contacts-file-hint import-error"' in body(refused)
    with session_factory() as session:  # the current list (the one replaced goes a bit later)
        current = Contact.version == contacts.current_version(session)
        phones = set(session.scalars(select(Contact.phone).where(current)))
    assert phones == {"+14155550100", "+14155550101"}


# --- delivery progress ---------------------------------------------------------------------------


def test_message_page_follows_delivery_until_sent(stack, console, session_factory):
    app = console.app()  # now with the stack's broker and sandbox
    for name in ("ana", "ben"):
        console.set_password(name)
    with serving(app) as url:

        def signed_in(name: str) -> requests.Session:
            browser = requests.Session()
            page = browser.get(f"{url}/console/login", timeout=10).text
            form = {"csrf_token": csrf(page), "username": name, "password": PASSWORD}
            assert (
                browser.post(f"{url}/console/login", data=form, timeout=10).url == f"{url}/console/"
            )
            return browser

        ana = signed_in("ana")
        page = ana.get(f"{url}/console/compose?template=school_closure", timeout=10).text
        form = {
            "csrf_token": csrf(page),
            "template": "school_closure",
            "schools": "all",
            "date": "2026-03-03",
            "reason": "a winter storm",
            "reason.es": "una tormenta invernal",
            "channels": ["x", "facebook", "web"],
            "locales": ["en", "es"],
            "kind": "actual",
        }
        created = ana.post(f"{url}/console/compose", data=form, timeout=10)
        message_id = int(created.url.rsplit("/", 1)[-1])
        ana.post(created.url + "/submit", data={"csrf_token": csrf(created.text)}, timeout=10)
        stack.start_worker()
        ben = signed_in("ben")
        queue = ben.get(f"{url}/console/approvals", timeout=10).text
        approved = ben.post(
            f"{url}/console/messages/{message_id}/approve",
            data={"csrf_token": csrf(queue)},
            timeout=10,
        )
        assert (
            approved.status_code == 200 and "Approved: the message is being sent." in approved.text
        )
        deadline = time.monotonic() + 60
        while True:  # what console.js does every second
            progress = ben.get(approved.url + "/status.json", timeout=10).json()
            if not progress["active"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert progress["state"] == "sent", progress
        page = ben.get(approved.url, timeout=10).text
    assert 'id="message-state">sent<' in page
    assert 'data-active="false"' in page
    for channel in ("x", "facebook", "web"):
        done = {c["channel"]: c for c in progress["channels"]}[channel]
        assert done["done"] == done["total"] == done["counts"]["sent"] >= 1
        assert (
            f'<progress id="progress-{channel}" value="{done["total"]}" max="{done["total"]}"'
            in page
        )
    assert state_of(session_factory, message_id) == "sent"
