"""The console's admin pages and the correction actions, through Flask's test client: each is
the service function the command line calls, refused the same way (and nothing changed) for a
role without the right, a forged form, another user's or family's id, or a reason carrying
invisible or bidirectional characters."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from broadcaster.core.models import LedgerEntry, LedgerPayload, Message, OptOut, User
from tests.console_client import body

BIDI = "wrong date\u202egnp.exe"  # RIGHT-TO-LEFT OVERRIDE
FULL = "+19515550101"  # the sample family H-1001's mobile
MASKED = "+1••••••0101"


def ledger_events(session_factory, prefix: str) -> list[tuple[str, str | None, dict]]:
    with session_factory() as session:
        rows = session.execute(
            select(LedgerEntry.event, LedgerEntry.actor, LedgerPayload.body)
            .join(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
            .where(LedgerEntry.event.startswith(prefix))
            .order_by(LedgerEntry.seq)
        )
        return [(event, actor, json.loads(payload)) for event, actor, payload in rows]


def disabled(session_factory, name: str) -> bool:
    with session_factory() as session:
        return session.scalar(select(User).where(User.name == name)).disabled_at is not None


def error_text(response) -> str:
    found = re.search(r'class="flash error"[^>]*>([^<]*)<', body(response))
    return found[1] if found else ""


def test_an_admin_disables_enables_unlocks_and_replaces_a_token(console, run, session_factory):
    console.tokens["it"] = run.json("users", "add", "it")["token"]
    it = console.signed_in("it")
    page = body(it.get("/console/users"))
    assert 'href="/console/users" aria-current="page">Users</a>' in page
    row = (
        r'id="user-ben" data-state="enabled">\s*<th scope="row">'
        r'<a href="/console/users/ben">ben</a></th>\s*<td>approver</td>'
    )
    assert re.search(row, page)
    ben = console.signed_in("ben")

    assert it.post("/console/users/ben/disable").status_code == 302
    assert "ben is disabled" in body(it.get("/console/users"))
    assert disabled(session_factory, "ben")
    assert ben.get("/console/").status_code == 302  # signed out
    assert console.browser().login("ben").status_code == 403
    assert run("users", "list", "--json").exit_code == 0
    refused = run("approve", "1", "--as", "ben", token=console.tokens["ben"])
    assert refused.exit_code == 2 and "ben is disabled" in refused.stderr

    assert it.post("/console/users/ben/enable").status_code == 302
    assert console.browser().login("ben").status_code == 302

    assert console.browser().login("ana", "not ana's password").status_code == 403
    assert it.post("/console/users/ana/unlock").status_code == 302
    assert "sign-in delays are cleared (1 address)." in body(it.get("/console/users"))

    shown = it.post("/console/users/ana/token")
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    token = re.search(r'id="new-token" value="([^"]+)"', body(shown))[1]
    assert token not in body(it.get("/console/users"))  # shown once, never flashed
    old = run("users", "token", "ana", "--json", token=console.tokens["ana"])
    assert old.exit_code == 2 and "wrong token" in old.stderr
    assert run("users", "token", "ana", "--json", token=token).exit_code == 0

    events = [(e, actor, p["name"]) for e, actor, p in ledger_events(session_factory, "user.")]
    assert events[-5:] == [
        ("user.disabled", "it", "ben"),
        ("user.enabled", "it", "ben"),
        ("user.unlocked", "it", "ana"),
        ("user.token_replaced", "it", "ana"),
        ("user.token_replaced", "ana", "ana"),
    ]


def test_non_admins_forged_forms_and_unknown_users_change_nothing(console, run, session_factory):
    console.tokens["it"] = run.json("users", "add", "it")["token"]
    ana, it = console.signed_in("ana"), console.signed_in("it")
    before = ledger_events(session_factory, "user.")
    assert 'href="/console/users"' not in body(ana.get("/console/"))
    assert ana.get("/console/users").status_code == 403
    for action in ("disable", "unlock", "token"):
        refused = ana.post(f"/console/users/ben/{action}")
        assert refused.status_code == 403, action
        assert "ana (author) may not manage users" in body(refused)
    assert ana.post("/console/users/it/disable").status_code == 403

    assert it.post("/console/users/ben/disable", with_csrf=False).status_code == 400
    forged = it.post("/console/users/ben/disable", {"csrf_token": "forged"}, with_csrf=False)
    assert forged.status_code == 400
    assert it.post("/console/users/nobody/disable").status_code == 404
    assert it.post("/console/users/" + "a" * 65 + "/disable").status_code == 404
    last = it.post("/console/users/it/disable")  # the last enabled admin
    assert last.status_code == 403 and "last enabled admin" in error_text(last)
    assert error_text(it.get("/console/users")) == ""  # on that response only
    assert it.post("/console/users/ben/enable").status_code == 400  # already enabled

    assert ledger_events(session_factory, "user.") == before
    assert not disabled(session_factory, "ben") and not disabled(session_factory, "it")
    assert run("users", "token", "ben", "--json", token=console.tokens["ben"]).exit_code == 0


def test_contacts_are_found_masked_and_opted_out_with_a_reason_in_the_ledger(
    console, run, session_factory
):
    console.tokens["it"] = run.json("users", "add", "it")["token"]
    it = console.signed_in("it")
    assert 'href="/console/contacts/find"' in body(it.get("/console/contacts"))
    page = body(it.get("/console/contacts/find?digits=0101"))
    assert page.count(MASKED) == 2 and FULL not in page  # H-1001's two rows
    assert "receives texts" in page
    contact_id = int(re.search(r'id="contact-(\d+)"', page)[1])
    refused = it.get("/console/contacts/find?digits=01")
    assert refused.status_code == 400 and "last 4 to 15 digits" in body(refused)
    assert it.get("/console/contacts/find?digits=" + "1" * 100_000).status_code == 400
    assert it.get("/console/contacts/find?digits=%25%5F%25").status_code == 400  # LIKE's % and _

    url = f"/console/contacts/{contact_id}/opt-out"
    for reason in (BIDI, "  ", "zero\u200bwidth\u2066isolate", "x" * 301):
        refused = it.post(url, {"reason": reason, "digits": "0101"})
        assert refused.status_code == 400, reason
    assert "U+202E" in body(it.post(url, {"reason": BIDI}))
    assert it.post(url, {"reason": "asked by phone"}, with_csrf=False).status_code == 400
    assert it.post("/console/contacts/999999/opt-out", {"reason": "x"}).status_code == 404
    with session_factory() as session:
        assert session.get(OptOut, FULL) is None

    done = it.post(url, {"reason": "father called the office", "digits": "0101"})
    assert done.status_code == 302
    page = body(it.get(done.headers["Location"]))
    assert f"{MASKED} is opted out" in page and "opted out</td>" in page
    assert it.post(url, {"reason": "again"}).status_code == 400  # already out
    assert (
        it.post(f"/console/contacts/{contact_id}/opt-in", {"reason": "asked back"}).status_code
        == 302
    )
    with session_factory() as session:
        assert session.get(OptOut, FULL) is None
    assert ledger_events(session_factory, "contact.") == [
        (
            "contact.opted_out",
            "it",
            {"phone": FULL, "by": "it", "reason": "father called the office"},
        ),
        ("contact.opted_in", "it", {"phone": FULL, "by": "it", "reason": "asked back"}),
    ]

    # Neither the search nor the change is for other roles: the records officer may see
    # recipients' numbers in an export, but not look families up here.
    dev = console.signed_in("dev")
    assert dev.get("/console/contacts/find?digits=0101").status_code == 403
    assert FULL not in body(dev.get("/console/contacts/find?digits=0101"))
    assert dev.post(url, {"reason": "x"}).status_code == 403
    # An admin who is also a records officer sees the numbers whole.
    both = run.json("users", "add", "rosa", "--role", "admin", "--role", "records_officer",
                    "--as", "it", token=console.tokens["it"])  # fmt: skip
    console.tokens["rosa"] = both["token"]
    assert FULL in body(console.signed_in("rosa").get("/console/contacts/find?digits=0101"))
    with session_factory() as session:
        assert session.get(OptOut, FULL) is None


def test_retracting_from_the_console_is_refused_as_the_cli_refuses(
    console, run, compose_closure, session_factory
):
    draft = compose_closure()
    mid = draft["id"]
    cli = run("retract", str(mid), "--as", "ana", "--reason", "wrong date",
              token=console.tokens["ana"])  # fmt: skip
    ana = console.signed_in("ana")
    refused = ana.post(f"/console/messages/{mid}/retract", {"reason": "wrong date"})
    assert refused.status_code == 403 and cli.exit_code == 2
    assert error_text(refused) in cli.stderr and "may not retract" in error_text(refused)
    ben = console.signed_in("ben")
    bidi = ben.post(f"/console/messages/{mid}/retract", {"reason": BIDI})
    assert bidi.status_code == 400 and "U+202E" in error_text(bidi)
    forged = ben.post(f"/console/messages/{mid}/retract", {"reason": "x"}, with_csrf=False)
    assert forged.status_code == 400
    assert ben.post("/console/messages/999999/retract", {"reason": "x"}).status_code == 404
    not_sent = ben.post(f"/console/messages/{mid}/retract", {"reason": "wrong date"})
    assert not_sent.status_code == 403
    with session_factory() as session:
        assert session.get(Message, mid).state == "draft"
    assert ledger_events(session_factory, "message.retract") == []


def test_an_update_is_refused_from_the_console_as_the_cli_refuses(
    console, run, compose_closure, session_factory
):
    mid = compose_closure()["id"]
    dev = console.signed_in("dev")  # a records officer composes nothing
    assert dev.get(f"/console/messages/{mid}/update").status_code == 403
    ana = console.signed_in("ana")
    page = body(ana.get(f"/console/messages/{mid}/update?template=school_closure"))
    assert 'id="var-date"' in page and 'name="audience"' not in page
    assert 'id="at-once"' not in page  # neither the original nor ana may send at once
    form = {
        "template": "school_closure",
        "schools": "all",
        "date": "2026-03-04",
        "reason": "the storm damage",
        "channels": ["x", "sms"],
        "locales": ["en"],
    }
    cli = run("update", str(mid), "school_closure", "--as", "ana", "--var", "schools=all",
              "--var", "date=2026-03-04", "--var", "reason=the storm damage",
              token=console.tokens["ana"])  # fmt: skip
    refused = ana.post(f"/console/messages/{mid}/update", form)
    assert refused.status_code == 403 and cli.exit_code == 2
    shown = re.search(r"<p>Not saved: ([^<]*)</p>", body(refused))[1]
    assert shown in cli.stderr and "an update follows a message that went out" in shown
    assert dev.post(f"/console/messages/{mid}/update", form).status_code == 403
    assert ana.post(f"/console/messages/{mid}/update", form, with_csrf=False).status_code == 400
    assert ana.post("/console/messages/999999/update", form).status_code == 404
    with session_factory() as session:
        assert session.scalars(select(Message.id)).all() == [mid]  # no update was written
