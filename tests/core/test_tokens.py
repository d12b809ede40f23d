"""Personal tokens under attack (issue 9, item 5): a wrong bearer token costs no argon2 hash, wrong
tokens are throttled per client address across web workers, `users token` replaces a token at
once, and a disabled user can do nothing on the API, the command line or the console.

Everything runs for real: the web app on loopback ports (two instances for two workers), the CLI,
argon2 itself. Argon2 runs are observed, not replaced: a profiler hook on the web server's request
threads records each call of argon2-cffi's `verify_secret`, the one function every verification
goes through.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import argon2.low_level
import click
import pytest
import time_machine
from argon2 import PasswordHasher
from sqlalchemy import select

from broadcaster.cli.main import cli
from broadcaster.core.identity import TOKEN
from broadcaster.core.models import LedgerEntry, LedgerPayload, User
from tests.api_client import CLOSURE, LOCKDOWN, Api
from tests.conftest import closure_vars
from tests.console_client import PASSWORD

WAIT_FREE = 3  # wrong tokens from one address before it waits (login_throttle's per-name policy)


@contextmanager
def argon2_verifications() -> Iterator[list[str]]:
    """The argon2 verifications that web requests started from now on run (one thread each)."""
    verify = argon2.low_level.verify_secret.__code__
    seen: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is verify:
            seen.append(threading.current_thread().name)

    threading.setprofile(profile)
    try:
        yield seen
    finally:
        threading.setprofile(None)


@pytest.fixture
def api_from(web_app, run):
    """The API behind one trusted proxy: each call names its client address (X-Forwarded-For),
    so a test can act from many addresses without one address's throttle getting in the way."""
    run.env["BROADCASTER_PROXY_HOPS"] = "1"
    api = Api(web_app())
    addresses = iter(range(1, 10_000))

    def call(method: str, path: str, token: str | None, body: Any = None, address: str = ""):
        address = address or f"198.51.100.{next(addresses) % 250 + 1}"
        return api(method, path, token, body, headers={"X-Forwarded-For": address})

    return call


def other_tokens(token: str) -> list[str]:
    """Tokens that are nobody's, of every shape: unknown lookup parts (with random secrets or
    with this token's own secret), tokens from before the lookup part, damaged copies of this
    token, and strings that are not tokens at all."""
    lookup, secret = TOKEN.fullmatch(token).groups()  # type: ignore[union-attr]
    return [
        f"bc_{secrets.token_hex(12)}_{secrets.token_urlsafe(32)}",
        f"bc_{secrets.token_hex(12)}_{secret}",
        "bct_" + secrets.token_urlsafe(32),
        token[:-1],
        token + "A",
        token.upper(),
        token.replace("bc_", "bct_", 1),
        f"bc_{lookup}",
        secret,
        "x",
        "A" * 8000,
    ]


def test_a_token_nobody_has_runs_no_argon2_and_a_known_lookup_runs_exactly_one(api_from, tokens):
    ana = tokens["ana"]
    lookup = TOKEN.fullmatch(ana)[1]  # type: ignore[index]
    with argon2_verifications() as seen:
        for token in other_tokens(ana):
            assert api_from("GET", "/messages", token).status_code == 401, token
        assert seen == []
        # The attack as reported: eight parallel wrong tokens. None of them hashes anything.
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda t: api_from("GET", "/messages", t), other_tokens(ana)[:8])
            )
        assert {a.status_code for a in answers} == {401} and seen == []
        # A known lookup part with a wrong secret costs exactly one verification, as does the
        # right token.
        assert api_from("GET", "/messages", f"bc_{lookup}_{'A' * 43}").status_code == 401
        assert len(seen) == 1
        assert api_from("GET", "/messages", ana).status_code == 200
        assert len(seen) == 2


def test_wrong_tokens_are_throttled_per_address_across_web_workers(
    web_app, run, tokens, session_factory
):
    first, second = Api(web_app()), Api(web_app())  # two workers, one database
    frozen = time_machine.travel(dt.datetime.now(dt.UTC), tick=False)  # waits do not run out
    with frozen, argon2_verifications() as seen:
        for attempt in range(WAIT_FREE):
            assert first("GET", "/messages", f"bct_wrong-{attempt}").status_code == 401
        refused = second("POST", "/messages", "bct_wrong-again", CLOSURE)
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
        assert wait > 0 and f"try again in {wait} seconds" in refused.json()["error"]
        # While the address waits nothing is looked up or hashed, not even the right token;
        # X-Forwarded-For is not believed without BROADCASTER_PROXY_HOPS.
        for api in (first, second):
            for token in (tokens["ana"], "bct_wrong-yet-again"):
                assert api("GET", "/messages", token).status_code == 429
        spoofed = second("GET", "/messages", "x", headers={"X-Forwarded-For": "203.0.113.5"})
        assert spoofed.status_code == 429
        assert seen == []
        # Behind the district's proxy the client is the address the proxy saw.
        run.env["BROADCASTER_PROXY_HOPS"] = "1"
        proxied = Api(web_app())
        elsewhere = {"X-Forwarded-For": "203.0.113.5"}
        assert proxied("GET", "/messages", tokens["ana"], headers=elsewhere).status_code == 200
        for attempt in range(WAIT_FREE):
            wrong = proxied("GET", "/messages", f"bct_w{attempt}", headers=elsewhere)
            assert wrong.status_code == 401
        assert proxied("GET", "/messages", "bct_w", headers=elsewhere).status_code == 429
        other = {"X-Forwarded-For": "203.0.113.6"}
        assert proxied("GET", "/messages", tokens["ana"], headers=other).status_code == 200


def ledger_text(session_factory) -> tuple[list[str], str]:
    """Every ledger event, and every payload as one text (to look for secrets in)."""
    with session_factory() as session:
        events = list(session.scalars(select(LedgerEntry.event).order_by(LedgerEntry.seq)))
        payloads = select(LedgerPayload.body).order_by(LedgerPayload.seq)
        bodies = "\n".join(b or "" for b in session.scalars(payloads))
    return events, bodies


def test_users_token_replaces_a_token_at_once(api_from, run, tokens, session_factory):
    admin = run.json("users", "add", "it")["token"]
    old = tokens["ana"]
    assert api_from("GET", "/messages", old).status_code == 200
    new = run.json("users", "token", "ana", token=old)  # ana herself
    assert new["name"] == "ana" and TOKEN.fullmatch(new["token"]) and new["token"] != old
    assert api_from("GET", "/messages", old).status_code == 401
    refused = run(
        "compose", "school_closure", "--as", "ana", *closure_vars("a winter storm"), token=old
    )
    assert refused.exit_code == 2 and refused.stderr.count("\n") == 1
    assert "wrong token for 'ana'" in refused.stderr
    assert api_from("GET", "/messages", new["token"]).status_code == 200
    # Somebody else's token is an admin's to replace, not a colleague's.
    refused = run("users", "token", "ana", "--as", "ben", token=tokens["ben"])
    assert refused.exit_code == 2 and "may not manage users" in refused.stderr
    shown = run("users", "token", "ana", "--as", "it", token=admin)
    assert shown.exit_code == 0, shown.output
    latest = shown.stdout.splitlines()[-1]
    assert TOKEN.fullmatch(latest)
    for token in (old, new["token"]):
        assert api_from("GET", "/messages", token).status_code == 401
    assert api_from("GET", "/messages", latest).status_code == 200
    events, bodies = ledger_text(session_factory)
    assert events.count("user.token_replaced") == 2
    for secret in (old, new["token"], latest, admin, "$argon2"):
        assert secret not in bodies
    for secret in (old, new["token"], latest):
        # The secret half may itself hold "_" (urlsafe base64): split at the prefix only.
        assert secret.split("_", 2)[2] not in bodies


def acting_verbs(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> Iterator[tuple]:
    """Every command that acts as a user (`--as`)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the root imports its verbs lazily: ask it for each
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from acting_verbs(command, (*prefix, name))
        elif any(param.name == "as_user" for param in command.params):
            yield (*prefix, name)


def test_a_disabled_user_can_do_nothing_anywhere(api_from, console, run, tokens, tmp_path):
    admin = run.json("users", "add", "it")["token"]
    ana = tokens["ana"]
    draft = str(
        run.json(
            "compose", "school_closure", "--as", "ana", *closure_vars("a winter storm"), token=ana
        )["id"]
    )
    browsers = [console.signed_in("ana"), console.signed_in("ana")]  # two console sessions
    for browser in browsers:
        assert browser.get("/console/").status_code == 200
    (tmp_path / "contacts.csv").write_text("phone,language,schools\n", encoding="utf-8")
    # Each verb with the arguments it needs to get as far as asking who acts.
    verbs: dict[tuple, tuple[str, ...]] = {
        ("compose",): ("school_closure", *closure_vars("a winter storm")),
        ("trigger",): ("lockdown", "--var", "school=lincoln-hs", "--yes"),
        ("update",): (draft, "school_closure", *closure_vars("a winter storm", audience=None)),
        **{(verb,): (draft,) for verb in ("submit", "approve", "cancel", "retry", "reach")},
        **{(verb,): (draft, "--reason", "r") for verb in ("reject", "retract")},
        ("records", "hold"): ("--message", draft, "--reason", "audit"),
        ("records", "release"): ("1",),
        ("records", "purge"): (),
        ("records", "export"): ("--out", str(tmp_path / "export")),
        ("contacts", "import"): (str(tmp_path / "contacts.csv"),),
        ("contacts", "find"): ("0101",),
        **{("contacts", verb): ("1", "--reason", "r") for verb in ("opt-out", "opt-in")},
        **{
            ("users", verb): ("ana",)
            for verb in ("add", "passwd", "token", "unlock", "phone-unlock")
        },
        ("users", "phone"): ("ana", "+14155550123"),
        ("users", "roles"): ("ben", "--role", "author"),
        ("inbox",): (),
        **{("users", verb): ("ben",) for verb in ("disable", "enable")},
        **{
            ("users", verb): ("ben", "--issuer", "https://id.example.org", "--subject", "s-1")
            for verb in ("link", "unlink")
        },
    }
    assert set(verbs) == set(acting_verbs())  # a new verb must be added here

    done = run("users", "disable", "ana", "--as", "it", token=admin)
    assert done.exit_code == 0 and done.stdout == "ana is disabled\n"

    for verb, args in verbs.items():
        typed = f"{PASSWORD}\n{PASSWORD}\n"  # for users passwd, which asks first
        refused = run(*verb, *args, "--as", "ana", token=ana, input=typed)
        assert refused.exit_code == 2, (verb, refused.output)
        assert refused.stderr.endswith(
            "error: ana is disabled; an admin can enable it: broadcaster users enable ana\n"
        ), (verb, refused.stderr)
    with argon2_verifications() as seen:
        for method, path, body in (
            ("GET", "/messages", None),
            ("GET", f"/messages/{draft}", None),
            ("POST", "/messages", CLOSURE),
            ("POST", "/preview", CLOSURE),
            ("POST", "/trigger", LOCKDOWN),
            ("POST", f"/messages/{draft}/submit", {}),
        ):
            assert api_from(method, path, ana, body).status_code == 401, path
    assert seen == []  # refused before any hash: a disabled user's token costs nothing
    for browser in browsers:  # its console sessions have ended
        assert browser.get("/console/").headers["Location"].startswith("/console/login")
    assert console.browser().login("ana").status_code == 403

    assert run("users", "enable", "ana", "--as", "it", token=admin).exit_code == 0
    assert api_from("GET", "/messages", ana).status_code == 200
    assert run("submit", draft, "--as", "ana", token=ana).exit_code == 0
    assert console.browser().login("ana").status_code == 302
    for browser in browsers:  # the sessions from before stay ended
        assert browser.get("/console/").status_code == 302
    assert [u["disabled"] for u in run.json("users", "list")] == [False] * 5


def test_only_an_admin_disables_and_never_the_last_enabled_admin(run, tokens, session_factory):
    admin = run.json("users", "add", "it")["token"]
    refused = run("users", "disable", "ben", "--as", "ana", token=tokens["ana"])
    assert refused.exit_code == 2 and "may not manage users" in refused.stderr
    before, _ = ledger_text(session_factory)
    last = run("users", "disable", "it", "--as", "it", token=admin)
    assert last.exit_code == 2
    assert last.stderr == "error: it is the last enabled admin; add or enable another first\n"
    assert run("users", "enable", "ben", "--as", "it", token=admin).stderr == (
        "error: ben is already enabled\n"
    )
    assert ledger_text(session_factory)[0] == before  # refusals write nothing
    zoe = run.json("users", "add", "zoe", "--role", "admin", "--as", "it", token=admin)["token"]
    assert run("users", "disable", "it", "--as", "zoe", token=zoe).exit_code == 0
    assert run("users", "disable", "zoe", "--as", "zoe", token=zoe).exit_code == 2  # the last one
    assert run("users", "disable", "ben", "--as", "zoe", token=zoe).exit_code == 0
    events, bodies = ledger_text(session_factory)
    assert events[len(before) :] == ["user.added", "user.disabled", "user.disabled"]
    entries = [json.loads(b) for b in bodies.splitlines()[-2:]]
    assert entries == [{"name": "it", "by": "zoe"}, {"name": "ben", "by": "zoe"}]


def test_a_token_from_before_migration_0011_works_until_it_is_replaced(
    api_from, run, tokens, session_factory
):
    """Tokens issued before the lookup part (`bct_…`, found by their SHA-256) keep working."""
    legacy = "bct_" + secrets.token_urlsafe(32)
    with session_factory() as session:  # the row as the code before 0011 wrote it
        session.add(
            User(
                name="it",
                roles=["admin"],
                token_hash=PasswordHasher().hash(legacy),
                token_lookup=hashlib.sha256(legacy.encode()).hexdigest(),
            )
        )
    assert api_from("GET", "/messages", legacy).status_code == 200
    listed = run("users", "disable", "ben", "--as", "it", token=legacy)
    assert listed.exit_code == 0, listed.output
    new = run.json("users", "token", "it", token=legacy)["token"]
    assert api_from("GET", "/messages", legacy).status_code == 401
    assert run("users", "enable", "ben", "--as", "it", token=legacy).exit_code == 2
    assert run("users", "enable", "ben", "--as", "it", token=new).exit_code == 0
