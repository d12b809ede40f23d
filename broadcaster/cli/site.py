"""`broadcaster site publish`: write the public site's static files now (web/publish.py)."""

from __future__ import annotations

import click

from broadcaster.cli.app import App, json_option, pass_app
from broadcaster.cli.base import BroadcasterGroup, emit_json, example
from broadcaster.core.wording import count
from broadcaster.web.publish import Publisher


@click.group("site", cls=BroadcasterGroup, epilog=example("broadcaster site publish"))
def site_group() -> None:
    """The public site as static files, in [web] publish_dir (and its bucket, if set)."""


@site_group.command("publish", epilog=example("broadcaster site publish"))
@json_option
@pass_app
def site_publish(app: App, as_json: bool) -> None:
    """Write every public page, feed, CAP document and banner.js now, whatever changed: after a
    deploy (templates, district file), or to rebuild the folder. Workers keep it current after
    that; this only writes what is already public, so it needs no user."""
    app.prepare()
    outcome = Publisher(app.settings, app.district).publish(force=True)
    if as_json:
        return emit_json(outcome.as_dict())
    if outcome.busy:
        click.echo("a worker is publishing now; it publishes everything once more when done")
        return
    line = f"published to {app.district.site_dir}: {count(len(outcome.written), 'file')} written"
    line += f", {len(outcome.removed)} removed"
    if outcome.uploaded is not None:
        line += f", {len(outcome.uploaded)} uploaded"
    click.echo(line)


COMMANDS = [site_group]
