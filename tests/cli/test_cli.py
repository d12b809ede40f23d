"""The command line as a user meets it: users and tokens, exit codes, one-line errors, the
embedded database, and the installed `broadcaster` script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from sqlalchemy import func, select

from broadcaster.core.identity import TOKEN
from broadcaster.core.models import LedgerEntry, User
from tests.conftest import Cli, closure_vars


def test_users_add_prints_the_token_once_and_stores_only_a_hash(run, session_factory):
    added = run.json("users", "add", "ana")
    assert added["name"] == "ana" and added["roles"] == ["author"]
    assert TOKEN.fullmatch(added["token"])
    with session_factory() as session:
        stored = session.scalar(select(User.token_hash).where(User.name == "ana"))
    assert added["token"] not in stored and stored.startswith("$argon2")
    listed = run.json("users", "list")
    assert listed[0]["name"] == "ana" and "token" not in json.dumps(listed)


def test_config_roles_are_authoritative(run):
    result = run("users", "add", "ana", "--role", "approver")
    assert result.exit_code == 2
    assert "roles are set in the district config" in result.stderr
    assert run.json("users", "add", "ana", "--role", "author")["roles"] == ["author"]


def test_users_outside_the_config_need_a_role(run):
    result = run("users", "add", "zoe")
    assert result.exit_code == 2 and "--role" in result.stderr
    assert run("users", "add", "zoe", "--role", "wizard").exit_code == 2
    assert run("users", "add", "Zoe Smith", "--role", "author").exit_code == 2
    assert run.json("users", "add", "zoe", "--role", "approver", "--role", "author")["roles"] == [
        "author",
        "approver",
    ]
    assert run("users", "add", "zoe", "--role", "author").exit_code == 2  # exists already


def test_once_an_admin_exists_only_an_admin_adds_users(run):
    admin = run.json("users", "add", "it")["token"]
    author = run.json("users", "add", "ana", "--as", "it", token=admin)["token"]
    refused = run("users", "add", "mallory", "--role", "admin")
    assert refused.exit_code == 2 and "add --as ADMIN" in refused.stderr
    refused = run("users", "add", "mallory", "--role", "admin", "--as", "ana", token=author)
    assert refused.exit_code == 2 and "may not manage users" in refused.stderr
    assert run("users", "add", "ben", "--as", "it", token="bct_wrong").exit_code == 2
    assert [u["name"] for u in run.json("users", "list")] == ["ana", "it"]


def test_a_refused_command_writes_nothing(run, tokens, session_factory):
    with session_factory() as session:
        before = session.scalar(select(func.count()).select_from(LedgerEntry))
    bad = [
        ("compose", "school_closure", "--as", "ana", "--var", "date=yesterday"),
        (
            "compose",
            "school_closure",
            "--as",
            "ana",
            *closure_vars("snow"),
            "--locales",
            "fr",
        ),
        ("compose", "nope", "--as", "ana"),
        ("submit", "1", "--as", "ana"),
    ]
    for args in bad:
        result = run(*args, token=tokens["ana"])
        assert result.exit_code == 2, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: ")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == before
    assert run.json("list") == []


def test_no_token_and_no_terminal_is_a_clear_error(run, tokens):
    result = run("compose", "school_closure", "--as", "ana")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: set BROADCASTER_TOKEN to ana's personal token (or run at a terminal)"
    )


def test_preview_show_and_list(run, compose_closure):
    draft = compose_closure()
    assert run.json("preview", str(draft["id"]))["renditions"] == draft["renditions"]
    shown = run.json("show", str(draft["id"]))
    assert (
        shown["author"] == "ana" and shown["variables"]["reason"]["es"] == "una tormenta invernal"
    )
    assert [m["id"] for m in run.json("list")] == [draft["id"]]
    text = run("preview", str(draft["id"]))
    assert text.exit_code == 0 and "sms · es" in text.stdout and "Tuesday, March 3" in text.stdout


def test_markup_in_values_is_printed_as_typed(run, tokens):
    """Rich markup or template syntax in a value must not be interpreted by the terminal output."""
    result = run(
        "compose",
        "school_closure",
        "--as",
        "ana",
        *closure_vars("[bold]snow[/bold] {{ 7*7 }}"),
        token=tokens["ana"],
    )
    assert result.exit_code == 0
    assert "[bold]snow[/bold] {{ 7*7 }}" in result.stdout


def test_the_embedded_database_migrates_itself(tmp_path):
    env = {"BROADCASTER_HOME": str(tmp_path / "fresh"), "BROADCASTER_DATABASE_URL": ""}
    fresh = Cli(env)
    assert fresh.json("users", "add", "ana")["name"] == "ana"
    assert (tmp_path / "fresh" / "broadcaster.db").exists()
    assert fresh("records", "verify").exit_code == 0


def test_a_server_database_must_be_migrated_on_purpose(tmp_path):
    url = f"sqlite:///{tmp_path / 'server.db'}"
    cli = Cli({"BROADCASTER_HOME": str(tmp_path), "BROADCASTER_DATABASE_URL": url})
    result = cli("users", "list")
    assert result.exit_code == 2 and "broadcaster db upgrade" in result.stderr
    assert cli("db", "upgrade").exit_code == 0
    assert cli.json("users", "list") == []


def test_the_installed_script_runs_and_uses_exit_codes(tmp_path):
    exe = shutil.which("broadcaster", path=os.path.dirname(sys.executable)) or shutil.which(
        "broadcaster"
    )
    assert exe, "the broadcaster console script is installed by `pip install -e .`"
    env = {**os.environ, "BROADCASTER_HOME": str(tmp_path), "BROADCASTER_TOKEN": ""}
    env.pop("BROADCASTER_DATABASE_URL", None)
    ok = subprocess.run(
        [exe, "templates", "list", "--json"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "school_closure" in ok.stdout
    bad = subprocess.run([exe, "show", "1"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: no message 1; `broadcaster list` shows the messages"
    )
    usage = subprocess.run([exe, "compose"], env=env, capture_output=True, text=True)
    assert usage.returncode == 2


def test_a_broken_district_config_is_one_line_exit_2(tmp_path):
    cases = {
        "not toml [": "not valid TOML",
        '[district]\nname = "X"\n': "district.short_name: Field required",
        (
            '[district]\nname="X"\nshort_name="X"\ntime_zone="Mars/Olympus"\n'
            'alerts_url="https://x.org"\n'
        ): "unknown time zone",
        (
            '[district]\nname="X"\nshort_name="X"\ntime_zone="America/Chicago"\n'
            'alerts_url="https://x.org"\n[[routes]]\nid="1"\nname="R1"\nschools=["ghost"]\n'
        ): "route 1 names unknown school 'ghost'",
    }
    for text, says in cases.items():
        config = tmp_path / "district.toml"
        config.write_text(text, encoding="utf-8")
        cli = Cli({"BROADCASTER_HOME": str(tmp_path), "BROADCASTER_CONFIG": str(config)})
        result = cli("templates", "list")
        assert result.exit_code == 2, text
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = Cli({"BROADCASTER_HOME": str(tmp_path), "BROADCASTER_CONFIG": str(tmp_path / "no")})
    assert missing("templates", "list").exit_code == 2
