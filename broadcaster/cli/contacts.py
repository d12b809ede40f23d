"""`broadcaster contacts import`, and staff opt-outs: `contacts find`, `opt-out`, `opt-in`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from broadcaster.cli.app import ROW_ID, App, as_option, console, json_option, pass_app, read_token
from broadcaster.cli.base import BroadcasterGroup, emit_json, example
from broadcaster.cli.tables import print_table
from broadcaster.core import contacts, opt_outs


@click.group(
    "contacts",
    cls=BroadcasterGroup,
    epilog=example("broadcaster contacts import contacts.csv --as it"),
)
def contacts_group() -> None:
    """The district's contact list."""


@contacts_group.command(
    "import", epilog=example("broadcaster contacts import contacts.csv --as it")
)
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


@contacts_group.command("find", epilog=example("broadcaster contacts find 0101 --as it"))
@click.argument("digits")
@as_option
@json_option
@pass_app
def contacts_find(app: App, digits: str, as_user: str, as_json: bool) -> None:
    """Families whose mobile number ends with DIGITS (4 or more), masked (admins), with the
    FAMILY_ID that `contacts opt-out` and `opt-in` take."""
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        found = opt_outs.search(session, app.district, actor, digits)
    if as_json:
        return emit_json([dataclasses.asdict(f) for f in found])
    rows = [
        [str(f.contact_id), f.household, f.phone, f.language, ",".join(f.schools),
         "opted out" if f.opted_out else "receives texts"]
        for f in found
    ]  # fmt: skip
    print_table(
        console(), ["family_id", "household", "phone", "language", "schools", "texts"], rows
    )


def _opt_verb(verb: str, out: bool, help: str, sample: str) -> None:
    """`contacts opt-out` and `contacts opt-in`: one body, the direction given."""

    @contacts_group.command(verb, help=help, epilog=example(sample))
    @click.argument("family_id", type=ROW_ID)
    @as_option
    @click.option(
        "--reason",
        required=True,
        help="Why (the parent's request, who took it); kept in the ledger.",
    )
    @pass_app
    def opt(app: App, family_id: int, as_user: str, reason: str) -> None:
        token = read_token(as_user)
        with app.session() as session:
            actor = app.actor(session, as_user, token)
            shown = opt_outs.set_opted_out(session, app.district, actor, family_id, out, reason)
        done = "out of" if out else "back in to"
        click.echo(f"{shown} is opted {done} texts (kept in the ledger)")


_opt_verb(
    "opt-out",
    True,
    "Stop texting the mobile number of FAMILY_ID (from `contacts find`), as a STOP would.",
    'broadcaster contacts opt-out 12 --reason "father called the office" --as it',
)
_opt_verb(
    "opt-in",
    False,
    "Text the mobile number of FAMILY_ID again, as a START would.",
    'broadcaster contacts opt-in 12 --reason "mother asked by phone" --as it',
)


COMMANDS = [contacts_group]
