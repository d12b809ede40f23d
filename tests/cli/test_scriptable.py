"""The command line as scripts meet it: with `--json`, every failure is JSON on stdout too (its
exit code inside), beside the one line on stderr; piped, tables are tab-separated values."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

from rich.console import Console

from broadcaster.cli.tables import print_table, tsv_cell
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


def installed_script() -> str:
    found = shutil.which("broadcaster", path=os.path.dirname(sys.executable))
    assert found, "the broadcaster console script is installed by `pip install -e .`"
    return found


def test_piped_tables_are_tab_separated_and_whole(tmp_path):
    """The installed script with stdout a pipe, as `broadcaster templates list | cut -f1` runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROADCASTER_", "COLUMNS"))}
    env["BROADCASTER_HOME"] = str(tmp_path)

    def piped(*args: str) -> str:
        done = subprocess.run(
            [installed_script(), *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def tsv(text: str) -> list[list[str]]:
        return [line.split("\t") for line in text.splitlines()]

    header, *rows = tsv(piped("templates", "list"))
    assert header == ["name", "title", "category", "pre-approved", "channels", "locales"]
    assert all(len(row) == len(header) for row in rows)
    templates = {t["name"]: t for t in json.loads(piped("templates", "list", "--json"))}
    assert [row[0] for row in rows] == list(templates) and "bus_route_disruption" in templates
    for row in rows:  # every cell whole, however wide
        expected = templates[row[0]]
        assert row[1] == expected["title"] and row[4] == ",".join(expected["channels"])
    # A table within a report: its lines are tab-separated too.
    shown = tsv(piped("templates", "show", "bus_route_disruption"))
    assert ["variable", "type", "required", "limit", "choices"] in shown
    assert ["reason", "text", "yes", "60", ""] in shown


def test_a_cell_cannot_break_the_lines_or_reach_the_terminal():
    assert tsv_cell("a\tb\nc\r\\d\x1b[2Je") == "a\\tb\\nc\\r\\\\d\\x1b[2Je"
    assert tsv_cell("Ñandú ‮ 🚌") == "Ñandú ‮ 🚌"


def test_at_a_narrow_terminal_long_words_wrap_and_are_not_cut():
    screen = io.StringIO()
    out = Console(file=screen, force_terminal=True, width=30, color_system=None)
    print_table(out, ("name", "title"), [("bus_route_disruption", "[bold]Bus route disruption")])
    drawn = screen.getvalue()
    assert "…" not in drawn and "[bold]" in drawn
    first_column = [line.split("│")[1].strip() for line in drawn.splitlines() if "│" in line]
    assert "".join(first_column) == "bus_route_disruption"  # folded, every letter kept


def test_completion_scripts_for_bash_and_zsh_complete_the_verbs(tmp_path):
    run = Cli({"BROADCASTER_HOME": str(tmp_path)})
    bash = run("completion", "bash")
    assert bash.exit_code == 0 and "_BROADCASTER_COMPLETE=bash_complete" in bash.stdout
    assert "complete -o nosort -F _broadcaster_completion broadcaster" in bash.stdout
    zsh = run("completion", "zsh")
    assert zsh.exit_code == 0 and zsh.stdout.startswith("#compdef broadcaster")
    assert run("completion", "fish").exit_code == 2
    # What the bash script asks the installed command when TAB is pressed after `templates l`.
    env = {
        **os.environ,
        "BROADCASTER_HOME": str(tmp_path),
        "_BROADCASTER_COMPLETE": "bash_complete",
    }
    asked = subprocess.run(
        [installed_script()],
        env={**env, "COMP_WORDS": "broadcaster templates l", "COMP_CWORD": "2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert asked.stdout.split() == ["plain,list"]
