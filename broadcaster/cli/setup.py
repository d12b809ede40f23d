"""`broadcaster db` and `broadcaster templates`."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from broadcaster.cli.app import App, console, json_option, pass_app
from broadcaster.cli.base import BroadcasterGroup, emit_json, example
from broadcaster.cli.tables import print_table


@click.group("db", cls=BroadcasterGroup, epilog=example("broadcaster db upgrade"))
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade", epilog=example("broadcaster db upgrade"))
@pass_app
def db_upgrade(app: App) -> None:
    """Migrate the database to the current schema."""
    from broadcaster.core import db  # Alembic: only for this verb

    revision = db.upgrade(app.url)
    click.echo(f"database at revision {revision}")


@click.group("templates", cls=BroadcasterGroup, epilog=example("broadcaster templates list"))
def templates_group() -> None:
    """The template library."""


@templates_group.command(
    "list",
    epilog=example(
        "broadcaster templates list",
        "broadcaster templates list | cut -f1",
        "broadcaster templates list --json",
    ),
)
@json_option
@pass_app
def templates_list(app: App, as_json: bool) -> None:
    """List the templates."""
    rows: list[dict[str, Any]] = [
        {
            "name": t.name,
            "title": t.meta.title,
            "category": t.meta.category,
            "pre_approved": t.meta.pre_approved,
            "channels": t.channels,
            "locales": t.locales,
            "version": t.version,
        }
        for t in app.catalog.all()
    ]
    if as_json:
        return emit_json(rows)
    print_table(
        console(),
        ("name", "title", "category", "pre-approved", "channels", "locales"),
        [
            (
                row["name"],
                row["title"],
                row["category"],
                "yes" if row["pre_approved"] else "",
                ",".join(row["channels"]),
                ",".join(row["locales"]),
            )
            for row in rows
        ],
    )


@templates_group.command("show", epilog=example("broadcaster templates show lockdown"))
@click.argument("name")
@json_option
@pass_app
def templates_show(app: App, name: str, as_json: bool) -> None:
    """Show a template's variables, channels and languages."""
    described = app.catalog.get(name).describe(app.district)
    if as_json:
        return emit_json(described)
    out = console()
    out.print(Text(f"{described['name']}: {described['title']} ({described['category']})", "bold"))
    out.print(Text(described["description"]))
    out.print(
        Text(
            f"version {described['version']}; channels {', '.join(described['channels'])}; "
            f"languages {', '.join(described['locales'])}; "
            f"valid {described['default_valid_hours']} h unless --valid-until says otherwise"
            + ("; pre-approved for incidents" if described["pre_approved"] else "")
        )
    )
    print_table(
        out,
        ("variable", "type", "required", "limit", "choices"),
        [
            (
                var["name"],
                var["type"],
                "yes" if var["required"] else "",
                str(var["max_length"] or ""),
                ", ".join(var["choices"] or []),
            )
            for var in described["variables"]
        ],
    )


COMMANDS = [db_group, templates_group]
