"""Every command's `--help` ends with an example, and every example is a command line that
parses: its verb exists and its options and arguments are accepted."""

from __future__ import annotations

import shlex
from collections.abc import Iterator

import click
from click.testing import CliRunner

from broadcaster.cli.main import cli


def subcommand(group: click.Group, name: str) -> click.Command | None:
    return group.get_command(click.Context(group), name)  # the root imports its verbs lazily


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name in group.list_commands(click.Context(group)):
        command = subcommand(group, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


def parse(line: str) -> click.Command:
    """The command an example line runs, once click has parsed its arguments (or failed to)."""
    words = shlex.split(line)
    assert words[0] == "broadcaster", line
    ends = [i for i, word in enumerate(words) if word in ("|", ">")]
    words = words[1 : ends[0] if ends else None]
    command: click.Command = cli
    while isinstance(command, click.Group) and words:
        found = subcommand(command, words[0])
        if found is None:
            break
        command, _ = found, words.pop(0)
    command.make_context("broadcaster", words)  # raises on an unknown option or a bad value
    return command


def test_every_command_has_an_example_that_parses():
    walked = list(commands(cli))
    assert len(walked) > 40 and ("records", "verify-export") in walked
    for path in walked:
        shown = CliRunner().invoke(cli, [*path, "--help"], prog_name="broadcaster")
        assert shown.exit_code == 0, path
        assert "Example:" in shown.stdout, path
        examples = shown.stdout.split("Example:")[1].strip().splitlines()
        assert examples, path
        for line in map(str.strip, examples):
            # A verb's example runs that verb; a group's, one of its verbs.
            assert line.startswith(" ".join(("broadcaster", *path))), (path, line)
            ran = parse(line)
            assert not isinstance(ran, click.Group), line
