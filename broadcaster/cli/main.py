"""The `broadcaster` command line: thin verbs over the service functions, one module per verb
group, wired here.

Exit codes: 0 success; 2 bad input or a refusal (one line on stderr says what and why);
1 an internal error. With `--json`, the error is also printed on stdout as
`{"error": ..., "exit": ...}`. A refused command changes nothing: each verb runs in one
transaction.
"""

from __future__ import annotations

import click

from broadcaster.cli import (
    completion,
    contacts,
    delivery,
    inbox,
    messages,
    reach,
    records,
    serve,
    setup,
    site,
    users,
)
from broadcaster.cli.app import BroadcasterGroup, example


@click.group(cls=BroadcasterGroup, epilog=example("broadcaster demo", "broadcaster templates list"))
@click.version_option(package_name="broadcaster")
def cli() -> None:
    """Emergency and time-sensitive notifications for a school district."""


for _module in (
    setup,
    messages,
    records,
    reach,
    users,
    delivery,
    contacts,
    inbox,
    serve,
    site,
    completion,
):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="broadcaster")
