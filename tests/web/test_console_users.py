"""The users page does what the rest of `broadcaster users` does: add a user with its roles
(its token shown once), change the roles of a user the district file does not list, and set a
console password. Each through the CLI's service function and permission check, refused (and
nothing changed) for a non-admin, a forged form, another user's or an unknown user's name, a
name with invisible, bidirectional or look-alike characters, and huge input."""

from __future__ import annotations

import re

from sqlalchemy import select

from broadcaster.core.models import User
from tests.console_client import body
from tests.web.test_console_admin import error_text, ledger_events

NEW_PASSWORD = "four unrelated words here"


def user_names(session_factory) -> list[str]:
    with session_factory() as session:
        return list(session.scalars(select(User.name).order_by(User.name)))


def test_an_admin_adds_a_user_changes_its_roles_and_sets_its_password(
    console, run, session_factory, caplog
):
    console.tokens["it"] = run.json("users", "add", "it")["token"]
    it = console.signed_in("it")
    assert 'id="add-user"' in body(it.get("/console/users"))

    added = it.post("/console/users", {"name": "zoe", "roles": ["author", "approver"]})
    assert added.status_code == 200 and added.headers["Cache-Control"] == "no-store"
    page = body(added)
    assert "zoe is added" in page
    token = re.search(r'id="new-token" value="([^"]+)"', page)[1]
    assert token not in body(it.get("/console/users"))  # shown once, never flashed
    assert run.json("users", "token", "zoe", token=token)["name"] == "zoe"  # it works

    user_page = body(it.get("/console/users/zoe"))
    assert 'id="role-author" checked' in user_page and 'id="role-admin">' in user_page
    assert 'id="roles-listed"' not in body(it.get("/console/users/zoe"))
    done = it.post("/console/users/zoe/roles", {"roles": ["incident_commander"]})
    assert done.status_code == 302 and done.headers["Location"] == "/console/users/zoe"
    shown = body(it.get("/console/users/zoe"))
    assert "zoe now has the roles incident_commander." in shown
    assert run.json("users", "list")[-1] == {**run.json("users", "list")[-1],
                                              "roles": ["incident_commander"]}  # fmt: skip

    typed = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert it.post("/console/users/zoe/password", typed).status_code == 302
    assert console.browser().login("zoe", NEW_PASSWORD).status_code == 302
    assert 'id="has-password">set<' in body(it.get("/console/users/zoe"))

    events = [(e, actor, p["name"]) for e, actor, p in ledger_events(session_factory, "user.")]
    assert events[-4:] == [
        ("user.added", "it", "zoe"),
        ("user.token_replaced", "zoe", "zoe"),
        ("user.roles_changed", "it", "zoe"),
        ("user.password_set", "it", "zoe"),
    ]
    # Neither the token nor the password is in the ledger or the log.
    everything = repr(ledger_events(session_factory, "")) + caplog.text
    assert token not in everything and NEW_PASSWORD not in everything

    # The CLI verb does the same.
    cli = run.json("users", "roles", "zoe", "--role", "author", "--as", "it",
                   token=console.tokens["it"])  # fmt: skip
    assert cli == {"name": "zoe", "roles": ["author"]}


def test_forms_refused_for_non_admins_forged_or_tricky_input_change_nothing(
    console, run, session_factory
):
    console.tokens["it"] = run.json("users", "add", "it")["token"]
    zoe = run.json("users", "add", "zoe", "--role", "author", "--as", "it",
                   token=console.tokens["it"])  # fmt: skip
    console.tokens["zoe"] = zoe["token"]
    ana, it = console.signed_in("ana"), console.signed_in("it")
    before = ledger_events(session_factory, "user.")
    names = user_names(session_factory)

    # A non-admin, whatever it posts: refused server-side, as the CLI refuses it.
    assert ana.get("/console/users/zoe").status_code == 403
    for path, form in (
        ("/console/users", {"name": "eve", "roles": ["admin"]}),
        ("/console/users/zoe/roles", {"roles": ["admin"]}),
        ("/console/users/ana/roles", {"roles": ["admin"]}),  # its own
        ("/console/users/zoe/password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
    ):
        refused = ana.post(path, form)
        assert refused.status_code == 403, path
        assert "ana (author) may not manage users" in body(refused), path
    as_ana = ("--as", "ana")
    cli = run("users", "roles", "zoe", "--role", "admin", *as_ana, token=console.tokens["ana"])
    assert cli.exit_code == 2 and "ana (author) may not manage users" in cli.stderr

    # CSRF missing or forged.
    for path, form in (
        ("/console/users", {"name": "eve", "roles": ["author"]}),
        ("/console/users/zoe/roles", {"roles": ["admin"]}),
        ("/console/users/zoe/password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
    ):
        assert it.post(path, form, with_csrf=False).status_code == 400, path
        assert it.post(path, {**form, "csrf_token": "forged"}, with_csrf=False).status_code == 400

    # Names: bidi, invisible, look-alike, a trailing newline, huge; roles unknown or huge.
    for name, says in (
        ("ev\u202ee", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("ana\u200b", "U+200B ZERO WIDTH SPACE"),
        ("\u0430na", "U+0430 CYRILLIC SMALL LETTER A"),  # a Cyrillic "а": another "ana"
        ("Ana", "is not a user name"),
        ("a" * 100_000, "at most 64 characters"),
    ):
        refused = it.post("/console/users", {"name": name, "roles": ["author"]})
        assert refused.status_code == 400, name[:10]
        assert says in error_text(refused), (name[:10], error_text(refused))
        assert len(error_text(refused)) < 300
        assert 'id="new-token"' not in body(refused)
    for roles in (["superuser"], ["x" * 100_000], []):
        refused = it.post("/console/users", {"name": "eve", "roles": roles})
        assert refused.status_code == 400 and len(error_text(refused)) < 300
    assert it.post("/console/users", {"name": "zoe", "roles": ["author"]}).status_code == 400
    # The form strips what is typed; the service refuses a trailing newline (another "ana").
    cli = run("users", "add", "ana\n", "--as", "it", token=console.tokens["it"])
    assert cli.exit_code == 2 and "'ana\\n' is not a user name" in cli.stderr

    # Roles: of a user the district file lists (another user's, or the admin's own), unknown.
    listed = it.post("/console/users/ben/roles", {"roles": ["admin"]})
    assert listed.status_code == 403 and "set in the district config" in error_text(listed)
    assert 'id="roles-listed"' in body(it.get("/console/users/ben"))
    assert it.post("/console/users/zoe/roles", {"roles": ["root"]}).status_code == 400
    assert it.post("/console/users/zoe/roles", {"roles": ["author"]}).status_code == 400  # same
    assert it.post("/console/users/nobody/roles", {"roles": ["author"]}).status_code == 404

    # Passwords: differing, short, huge; never put back into the page.
    for password, confirm in (
        (NEW_PASSWORD, NEW_PASSWORD + "!"),
        ("short", "short"),
        ("p" * 2000, "p" * 2000),
        (" " + NEW_PASSWORD, " " + NEW_PASSWORD),
    ):
        refused = it.post("/console/users/zoe/password", {"password": password, "confirm": confirm})
        assert refused.status_code == 400, password[:10]
        assert "Nothing changed" in error_text(refused) and password not in body(refused)
    typed = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert it.post("/console/users/nobody/password", typed).status_code == 404

    assert ledger_events(session_factory, "user.") == before
    assert user_names(session_factory) == names
    assert console.browser().login("zoe", NEW_PASSWORD).status_code == 403
    assert [u["roles"] for u in run.json("users", "list") if u["name"] == "zoe"] == [["author"]]
