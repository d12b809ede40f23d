"""What the root command needs, kept light (click and the errors only) so that
`broadcaster --version` and `--help` import no service: the group that turns errors into exit
codes, JSON output, and the examples at the end of `--help`."""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

import click

from broadcaster.core.errors import BroadcasterError, Needed


class BroadcasterGroup(click.Group):
    """Turns errors into exit codes, in one place: one line on stderr and, when the command
    line asks for `--json`, the same error as JSON on stdout so scripts can parse it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the whole command line, before click consumes it
            ctx.meta["broadcaster.json"] = "--json" in args[: _end_of_options(args)]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BroadcasterError as exc:
            fail(ctx, f"error: {said(exc)}", exc.exit_code)
        except click.ClickException as exc:  # usage errors: click prints them on stderr
            if ctx.parent is None and ctx.meta.get("broadcaster.json"):
                emit_json({"error": exc.format_message(), "exit": exc.exit_code})
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # an internal error: say so in one line, no secrets, exit 1
            if os.environ.get("BROADCASTER_DEBUG"):
                raise
            first_line = (str(exc).splitlines() or [""])[0][:300]
            fail(ctx, f"internal error: {type(exc).__name__}: {first_line}", 1)


def _end_of_options(args: list[str]) -> int:
    """Where `--` ends the options (after it, `--json` is an argument's value)."""
    return args.index("--") if "--" in args else len(args)


# How the command line asks for a field that is not given as `--FIELD VALUE`.
_ASKED = {
    "message": "`broadcaster list` shows the messages",
    "hold": "`broadcaster records holds` lists them",
    "user": "`broadcaster users list` shows the users",
    "template": "`broadcaster templates list` shows them",
}


def said(exc: BroadcasterError) -> str:
    """The error as the command line says it: what happened, then the option to add."""
    return f"{exc}; {_ask(exc.needed)}" if exc.needed else str(exc)


def _ask(needed: Needed) -> str:
    value = "|".join(needed.choices) or needed.shape
    if needed.variable is not None:
        return f"add --var {needed.variable}={value or 'VALUE'}"
    if needed.field in _ASKED:
        return _ASKED[needed.field]
    return f"add --{needed.field.replace('_', '-')} {value}".rstrip()


def fail(ctx: click.Context, line: str, exit_code: int) -> NoReturn:
    click.echo(line, err=True)
    if ctx.meta.get("broadcaster.json"):
        emit_json({"error": line.removeprefix("error: "), "exit": exit_code})
    ctx.exit(exit_code)


def example(*lines: str) -> str:
    """A verb's `--help` epilog: command lines to copy, printed as written (click's \\b)."""
    return "\b\nExample:\n" + "\n".join(f"  {line}" for line in lines)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))
