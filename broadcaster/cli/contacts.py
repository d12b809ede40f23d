"""`broadcaster contacts import`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from broadcaster.cli.app import (
    App,
    BroadcasterGroup,
    as_option,
    emit_json,
    json_option,
    pass_app,
    read_token,
)
from broadcaster.core import contacts


@click.group("contacts", cls=BroadcasterGroup)
def contacts_group() -> None:
    """The district's contact list."""


@contacts_group.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@as_option
@json_option
@pass_app
def contacts_import(app: App, path: Path, as_user: str, as_json: bool) -> None:
    """Replace the contact list with a CSV export (all of it, or nothing)."""
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        result = contacts.import_csv(session, app.district, path, actor)
    data = dataclasses.asdict(result)
    if as_json:
        return emit_json(data)
    click.echo(f"imported {result.summary()}")


COMMANDS = [contacts_group]
