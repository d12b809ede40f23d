"""The command line as scripts meet it: with `--json`, every failure is JSON on stdout too (its
exit code inside), beside the one line on stderr."""

from __future__ import annotations

import json

from tests.conftest import Cli


def failed_json(result, exit_code: int) -> str:
    """The error a failed `--json` command printed: JSON on stdout, the same line on stderr."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    parsed = json.loads(result.stdout)
    assert parsed == {"error": parsed["error"], "exit": exit_code}
    assert parsed["error"] in result.stderr
    return parsed["error"]


def test_json_errors_parse_with_their_exit_code(run, tokens):
    run.json("users", "add", "it")  # the first admin: from now on only admins add users
    bad_var = run(
        "compose",
        "school_closure",
        "--as",
        "ana",
        "--var",
        "date=yesterday",
        "--json",
        token=tokens["ana"],
    )
    assert "schools" in failed_json(bad_var, 2)  # a required variable is missing
    refused = run(
        "users", "add", "mallory", "--role", "admin", "--as", "ana", "--json", token=tokens["ana"]
    )
    assert "may not manage users" in failed_json(refused, 2)
    unknown = run("show", "99", "--json")
    assert failed_json(unknown, 2) == "no message 99; `broadcaster list` shows the messages"
    in_a_group = run("templates", "show", "nope", "--json")
    assert "no template named 'nope'" in failed_json(in_a_group, 2)
    usage = run("show", "0", "--json")  # click's own errors too, with its usage text on stderr
    assert "0 is not in the range" in failed_json(usage, 2) and "Usage:" in usage.stderr
    # Without --json, stdout stays empty: the line on stderr is the whole error.
    plain = run("show", "99")
    assert plain.exit_code == 2 and plain.stdout == "" and plain.stderr.startswith("error: ")
    # After `--`, a `--json` is an argument's value, not the option.
    assert run("templates", "show", "--", "--json").stdout == ""


def test_an_internal_error_is_json_with_exit_1(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "broadcaster.db").write_text("not a database", encoding="utf-8")
    cli = Cli({"BROADCASTER_HOME": str(home), "BROADCASTER_DATABASE_URL": ""})
    error = failed_json(cli("list", "--json"), 1)
    assert error.startswith("internal error: DatabaseError") and "\n" not in error
