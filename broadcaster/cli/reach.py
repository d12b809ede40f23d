"""`broadcaster reach ID`: who a message reached, per family, and who it did not."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from broadcaster.cli.app import ROW_ID, App, as_option, console, json_option, pass_app, read_token
from broadcaster.cli.base import emit_json, example
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.wording import count
from broadcaster.records import reach as service
from broadcaster.records.reach import Reach


@click.command(
    "reach",
    epilog=example(
        "broadcaster reach 12 --as ben", "broadcaster reach 12 --csv reach-12.csv --as ben"
    ),
)
@click.argument("message_id", type=ROW_ID)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write one line per family to this new file.",
)
@click.option(
    "--unmasked",
    is_flag=True,
    help="Show phone numbers and e-mail addresses as they are (records officers only).",
)
@as_option
@json_option
@pass_app
def reach_cmd(
    app: App, message_id: int, csv_path: Path | None, unmasked: bool, as_user: str, as_json: bool
) -> None:
    """Who was reached, per family: by which channel and when, what was tried, and the families
    not reached. Live while the message is still going out."""
    if csv_path is not None:
        service.check_csv_target(csv_path)
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        view = service.reach(session, app.district, message_id, actor, unmasked)
    if csv_path is not None:
        service.write_csv(csv_path, service.csv_bytes(view))
    if as_json:
        emit_json(view.model_dump(mode="json"))
    else:
        print_reach(view)
    if csv_path is not None and not as_json:
        click.echo(f"wrote {count(view.families, 'family', 'families')} to {csv_path}")


def print_reach(view: Reach) -> None:
    out = console()
    out.print(Text(f"Message {view.message} is {view.state}", "bold"))
    if view.expanding:
        out.print("its texts, calls and e-mails are still being written: the counts will grow")
    out.print(
        f"{count(view.families, 'family', 'families')}: {view.reached} reached, "
        f"{view.pending} pending, "
        f"{view.not_reached} not reached"
    )
    by_channel = ", ".join(f"{c} {view.by_channel.get(c, 0)}" for c in FAMILY_CHANNELS)
    out.print(f"reached by channel: {by_channel}")
    if not view.unreached:
        out.print(Text("every family was reached or may still be", "green"))
        return
    out.print(Text(f"not reached ({len(view.unreached)}):", "red"))
    for family in view.unreached:
        out.print(Text(f"  {family.household}: {service.tried_text(family.tried)}"))
        if family.last_error:
            out.print(Text(f"    last error: {family.last_error}"))


COMMANDS = [reach_cmd]
