"""`broadcaster inbox`: the families' replies kept by the inbound hook (records/inbox.py)."""

from __future__ import annotations

import click

from broadcaster.cli.app import App, as_option, console, json_option, pass_app, read_token
from broadcaster.cli.base import emit_json, example
from broadcaster.cli.tables import print_table
from broadcaster.records import inbox


@click.command("inbox", epilog=example("broadcaster inbox --as dev"))
@as_option
@json_option
@pass_app
def inbox_command(app: App, as_user: str, as_json: bool) -> None:
    """List the texts families sent that were not STOP, START or HELP, newest first (numbers
    masked unless you may see them)."""
    token = read_token(as_user)
    with app.session() as session:
        rows = inbox.listing(session, app.district, app.actor(session, as_user, token))
    if as_json:
        return emit_json(rows)
    print_table(
        console(),
        ("received", "from", "family", "answers", "text"),
        [
            (
                row["received_at"][:16],
                row["from"] or "",
                row["household"] or "",
                str(row["answers"] or ""),
                (row["body"] or "") + (" [cut]" if row["truncated"] else ""),
            )
            for row in rows
        ],
    )


COMMANDS = [inbox_command]
