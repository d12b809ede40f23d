"""`broadcaster completion bash|zsh`: the shell completion script (click's own)."""

from __future__ import annotations

import click
from click.shell_completion import BashComplete, ShellComplete, ZshComplete

from broadcaster.cli.base import example

SHELLS: dict[str, type[ShellComplete]] = {"bash": BashComplete, "zsh": ZshComplete}


@click.command(
    "completion",
    epilog=example(
        "broadcaster completion bash > ~/.local/share/bash-completion/completions/broadcaster",
        "broadcaster completion zsh > ~/.zfunc/_broadcaster",
    ),
)
@click.argument("shell", type=click.Choice(list(SHELLS)))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the script that completes broadcaster's verbs and options in SHELL."""
    script = SHELLS[shell](ctx.find_root().command, {}, "broadcaster", "_BROADCASTER_COMPLETE")
    click.echo(script.source())


COMMANDS = [completion]
