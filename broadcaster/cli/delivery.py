"""Delivery verbs: status (and following it), trigger, retry, update, retract."""

from __future__ import annotations

import time
from typing import Any

import click

from broadcaster.authoring import corrections, messages
from broadcaster.authoring.views import draft_view
from broadcaster.cli.app import (
    ROW_ID,
    App,
    as_option,
    console,
    json_option,
    parse_vars,
    pass_app,
    read_token,
    split_list,
)
from broadcaster.cli.base import emit_json, example
from broadcaster.cli.messages import (
    compose_options,
    compose_request,
    report_dispatch,
)
from broadcaster.cli.printers import print_preview, print_status
from broadcaster.core.errors import BadInput
from broadcaster.core.states import OPEN
from broadcaster.core.wording import count
from broadcaster.delivery import dispatch, scheduling
from broadcaster.delivery.views import Status, status_view


def follow(app: App, message_id: int, timeout: float) -> Status:
    """Live per-channel progress until the message is done (or the timeout)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console(),
        transient=False,
    ) as progress:
        bars: dict[str, Any] = {}
        while True:
            with app.session() as session:
                view = status_view(session, messages.get_message(session, message_id), app.district)
            for channel, counts in view.deliveries.items():
                total = sum(counts.values())
                done = total - sum(counts[status] for status in OPEN)
                detail = f"sent {counts['sent'] + counts['delivered']}, failed {counts['failed']}"
                if channel not in bars:
                    bars[channel] = progress.add_task(channel, total=total, detail=detail)
                progress.update(bars[channel], completed=done, total=total, detail=detail)
            if not view.in_progress() or time.monotonic() > deadline:
                return view
            time.sleep(0.3)


def wait_done(app: App, message_id: int, timeout: float) -> Status:
    """The status once the message is done, or as it stands when the timeout runs out."""
    deadline = time.monotonic() + timeout
    while True:
        with app.session() as session:
            view = status_view(session, messages.get_message(session, message_id), app.district)
        if not view.in_progress() or time.monotonic() >= deadline:
            return view
        time.sleep(0.3)


@click.command("status", epilog=example("broadcaster status 12 --follow"))
@click.argument("message_id", type=ROW_ID)
@click.option("--follow", "follow_", is_flag=True, help="Watch until the message is done.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to follow at most.")
@json_option
@pass_app
def status_cmd(app: App, message_id: int, follow_: bool, timeout: float, as_json: bool) -> None:
    """Per-channel delivery progress of a message."""
    if follow_ and not as_json:
        view = follow(app, message_id, timeout)
    else:
        view = wait_done(app, message_id, timeout if follow_ else 0)
    emit_json(view.model_dump(mode="json")) if as_json else print_status(view)


@click.command(
    epilog=example("broadcaster trigger lockdown --as carmen --var school=lincoln-hs --yes")
)
@compose_options
@click.option("--yes", is_flag=True, help="Send at once: this is the incident path.")
@click.option("--follow/--no-follow", "follow_", default=True, help="Watch delivery afterwards.")
@pass_app
def trigger(
    app: App,
    template: str,
    as_user: str,
    as_json: bool,
    yes: bool,
    follow_: bool,
    **options: Any,
) -> None:
    """Incident path: compose from a pre-approved TEMPLATE and send it at once."""
    request = compose_request(template, options)
    if not yes:
        raise BadInput("trigger sends at once to everyone selected: add --yes")
    token = read_token(as_user)
    with app.session() as session:
        commander = app.actor(session, as_user, token)
        message, _ = messages.trigger_and_dispatch(
            session, app.district, app.catalog, commander, request
        )
        message_id = message.id
        when = scheduling.scheduled_for(message, app.district)
    report_dispatch(message_id, dispatch.released(session), quiet=as_json, scheduled_for=when)
    if as_json:
        emit_json(wait_done(app, message_id, 600 if follow_ else 0).model_dump(mode="json"))
    elif follow_:
        print_status(follow(app, message_id, 600))


@click.command(epilog=example("broadcaster retry 12 --as ben"))
@click.argument("message_id", type=ROW_ID)
@as_option
@pass_app
def retry(app: App, message_id: int, as_user: str) -> None:
    """Send again the deliveries of a message that failed (never those that were sent)."""
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        message = messages.get_message(session, message_id)
        # On a message being retracted, this finishes the retraction (its notice's deliveries).
        target, _ = corrections.retry(session, app.district, message, actor)
        target_id = target.id
    report_dispatch(target_id, dispatch.released(session))


@click.command(
    epilog=example(
        "broadcaster update 12 all_clear --as carmen --var school=lincoln-hs "
        "--var incident=lockdown --yes"
    )
)
@click.argument("message_id", type=ROW_ID)
@click.argument("template")
@as_option
@click.option(
    "--var",
    "var_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A variable value; NAME.LOCALE=... translates a text variable.",
)
@click.option("--channels", help="Comma-separated channels (default: the original's).")
@click.option("--locales", help="Comma-separated languages (default: the original's).")
@click.option("--valid-until", metavar="YYYY-MM-DDTHH:MM", help="Nothing goes out after this.")
@click.option(
    "--yes",
    is_flag=True,
    help="Send at once: an incident commander updating a pre-approved message.",
)
@json_option
@pass_app
def update(
    app: App,
    message_id: int,
    template: str,
    as_user: str,
    var_pairs: tuple[str, ...],
    channels: str | None,
    locales: str | None,
    valid_until: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Follow message MESSAGE_ID up with TEMPLATE (an all clear, a closure extended): it replies
    to the original's posts and texts exactly the people the original reached."""
    request = messages.Request(
        template=template,
        values=parse_vars(var_pairs),
        channels=split_list(channels),
        locales=split_list(locales),
        valid_until=valid_until,
    )
    token = read_token(as_user)
    with app.session() as session:
        author = app.actor(session, as_user, token)
        original = messages.get_message(session, message_id)
        follow_up, _ = corrections.update(
            session, app.district, app.catalog, author, original, request, at_once=yes
        )
        view = draft_view(session, app.district, follow_up, app.catalog)
    if yes:
        report_dispatch(view.id, dispatch.released(session), quiet=as_json)
    if as_json:
        return emit_json(view.model_dump(mode="json"))
    print_preview(view)
    if not yes:
        click.echo(
            f"Update of message {message_id}. Next: broadcaster submit {view.id} --as {as_user}"
        )


@click.command(
    epilog=example('broadcaster retract 12 --as ben --reason "sent for the wrong school"')
)
@click.argument("message_id", type=ROW_ID)
@as_option
@click.option("--reason", required=True, help="Why it is withdrawn (kept in the record).")
@json_option
@pass_app
def retract(app: App, message_id: int, as_user: str, reason: str, as_json: bool) -> None:
    """Withdraw a message that went out: delete its posts, mark its web alert cancelled and text
    a correction to everyone it reached."""
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        original = messages.get_message(session, message_id)
        notice, _ = corrections.retract(session, app.district, app.catalog, original, actor, reason)
        notice_id = notice.id
    done = dispatch.released(session)
    if done.warning:
        click.echo(f"warning: {done.warning}", err=True)
    if as_json:
        return emit_json({"id": message_id, "notice": notice_id})
    click.echo(
        f"message {message_id} is retracting: {count(done.total, 'deletion')} and "
        f"correction texts queued (notice {notice_id}); follow with "
        f"`broadcaster status {message_id} --follow`"
    )


COMMANDS = [status_cmd, trigger, retry, update, retract]
