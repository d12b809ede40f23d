"""The message verbs: compose, preview, show, list, submit, approve, reject, cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.text import Text

from broadcaster.authoring import messages
from broadcaster.authoring.views import detail_view, draft_view, summary_view
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
from broadcaster.cli.printers import print_preview
from broadcaster.cli.tables import print_table
from broadcaster.core.states import MessageKind
from broadcaster.core.wording import count
from broadcaster.delivery import dispatch, scheduling

Command = TypeVar("Command", bound=Callable[..., Any])


def compose_options(command: Command) -> Command:
    """The options that describe a message, shared by `compose` and `trigger`."""
    for option in reversed(
        [
            click.argument("template"),
            as_option,
            click.option(
                "--var",
                "var_pairs",
                multiple=True,
                metavar="KEY=VALUE",
                help="A variable value; NAME.LOCALE=... translates a text variable.",
            ),
            click.option("--channels", help="Comma-separated channels (default: the template's)."),
            click.option("--locales", help="Comma-separated languages (default: the district's)."),
            click.option(
                "--audience", help='Who is texted: "all" or "school:SLUG route:ID grade:N".'
            ),
            click.option(
                "--valid-until",
                metavar="YYYY-MM-DDTHH:MM",
                help="Nothing goes out after this (district time).",
            ),
            click.option(
                "--send-at",
                metavar="YYYY-MM-DDTHH:MM",
                help="Once approved, wait and send at this time (district time).",
            ),
            click.option(
                "--kind",
                type=click.Choice([kind.value for kind in MessageKind]),
                default=MessageKind.ACTUAL.value,
                show_default=True,
            ),
            json_option,
        ]
    ):
        command = option(command)
    return command


def compose_request(template: str, options: dict[str, Any]) -> messages.Request:
    return messages.Request(
        template=template,
        values=parse_vars(options["var_pairs"]),
        channels=split_list(options["channels"]),
        locales=split_list(options["locales"]),
        kind=options["kind"],
        audience=options["audience"],
        valid_until=options["valid_until"],
        send_at=options["send_at"],
    )


@click.command(
    epilog=example(
        "broadcaster compose school_closure --as ana --var schools=all --var date=2026-03-03 "
        '--var reason="a winter storm" --var reason.es="una tormenta invernal"'
    )
)
@compose_options
@pass_app
def compose(app: App, template: str, as_user: str, as_json: bool, **options: Any) -> None:
    """Create a draft from TEMPLATE and show its preview."""
    request = compose_request(template, options)
    token = read_token(as_user)
    with app.session() as session:
        author = app.actor(session, as_user, token)
        message = messages.compose(session, app.district, app.catalog, author, request)
        view = draft_view(session, app.district, message, app.catalog)
    if as_json:
        return emit_json(view.model_dump(mode="json"))
    print_preview(view)
    if any(f.severity == "block" for f in view.findings):
        click.echo("This draft has blocking findings and cannot be submitted.")
    else:
        click.echo(f"Next: broadcaster submit {view.id} --as {as_user}")


@click.command(epilog=example("broadcaster preview 12"))
@click.argument("message_id", type=ROW_ID)
@json_option
@pass_app
def preview(app: App, message_id: int, as_json: bool) -> None:
    """Show a message's renditions, counts and findings."""
    with app.session() as session:
        message = messages.get_message(session, message_id)
        view = draft_view(session, app.district, message, app.catalog)
    emit_json(view.model_dump(mode="json")) if as_json else print_preview(view)


@click.command(epilog=example("broadcaster show 12 --json"))
@click.argument("message_id", type=ROW_ID)
@json_option
@pass_app
def show(app: App, message_id: int, as_json: bool) -> None:
    """Show everything about a message: renditions, findings, approvals, timeline."""
    with app.session() as session:
        message = messages.get_message(session, message_id)
        view = detail_view(session, app.district, message, app.catalog)
    if as_json:
        return emit_json(view.model_dump(mode="json"))
    print_preview(view)
    out = console()
    out.rule(Text("timeline"))
    for step in view.timeline:
        out.print(Text(f"{step.at}  {step.event:<32} {step.actor or ''}"))


@click.command("list", epilog=example("broadcaster list --state submitted"))
@click.option("--state", help="Only messages in this state.")
@json_option
@pass_app
def list_cmd(app: App, state: str | None, as_json: bool) -> None:
    """List messages, newest first."""
    with app.session() as session:
        rows = [summary_view(m) for m in messages.list_messages(session, state)]
    if as_json:
        return emit_json([row.model_dump(mode="json") for row in rows])
    print_table(
        console(),
        ("id", "state", "kind", "template", "author", "created"),
        [
            (str(row.id), row.state, row.kind, row.template, row.author, row.created_at[:19])
            for row in rows
        ],
    )


def _act(app: App, message_id: int, as_user: str, action: str, **kwargs: Any) -> str:
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        message = messages.get_message(session, message_id)
        getattr(messages, action)(session, app.district, message, actor, **kwargs)
        return message.state


@click.command(epilog=example("broadcaster submit 12 --as ana"))
@click.argument("message_id", type=ROW_ID)
@as_option
@pass_app
def submit(app: App, message_id: int, as_user: str) -> None:
    """Submit a draft for approval."""
    state = _act(app, message_id, as_user, "submit")
    click.echo(f"message {message_id} is {state}; an approver must approve it")


@click.command(epilog=example("broadcaster approve 12 --as ben --ack-warnings"))
@click.argument("message_id", type=ROW_ID)
@as_option
@click.option("--ack-warnings", is_flag=True, help="Acknowledge the message's warnings.")
@click.option(
    "--send-in-quiet-hours",
    "quiet_override",
    metavar="REASON",
    help="Text and call now even in the district's quiet hours; the reason is kept.",
)
@pass_app
def approve(
    app: App, message_id: int, as_user: str, ack_warnings: bool, quiet_override: str | None
) -> None:
    """Approve a submitted message (not your own). Approval is the go: it is dispatched at once
    (a routine message's texts and calls wait for the end of quiet hours)."""
    token = read_token(as_user)
    with app.session() as session:
        approver = app.actor(session, as_user, token)
        message = messages.get_message(session, message_id)
        messages.approve_and_dispatch(
            session, app.district, message, approver, ack_warnings, quiet_override
        )
        when = scheduling.scheduled_for(message, app.district)
    report_dispatch(message_id, dispatch.released(session), scheduled_for=when)


def report_dispatch(
    message_id: int,
    done: dispatch.Released,
    quiet: bool = False,
    scheduled_for: str | None = None,
) -> None:
    """After the commit, which enqueued the deliveries (if the broker was down, the sweep does
    later). A scheduled message has none yet: the beat dispatches it when it is due."""
    if scheduled_for:
        click.echo(
            f"message {message_id} approved and scheduled for {scheduled_for}; "
            f"`broadcaster cancel {message_id}` stops it",
            err=quiet,
        )
        return
    if done.warning:
        click.echo(f"warning: {done.warning}", err=True)
    click.echo(
        f"message {message_id} approved and dispatching: "
        f"{count(done.total, 'delivery', 'deliveries')} queued"
        f"{', its texts being written' if done.expanding else ''}; "
        f"follow with `broadcaster status {message_id} --follow`",
        err=quiet,
    )


@click.command(epilog=example('broadcaster reject 12 --as ben --reason "the date is wrong"'))
@click.argument("message_id", type=ROW_ID)
@as_option
@click.option("--reason", required=True, help="Why, for the author.")
@pass_app
def reject(app: App, message_id: int, as_user: str, reason: str) -> None:
    """Reject a submitted message, with a reason."""
    state = _act(app, message_id, as_user, "reject", reason=reason)
    click.echo(f"message {message_id} is {state}")


@click.command(epilog=example("broadcaster cancel 12 --as ana"))
@click.argument("message_id", type=ROW_ID)
@as_option
@pass_app
def cancel(app: App, message_id: int, as_user: str) -> None:
    """Cancel a message before it is dispatched (a scheduled one too)."""
    state = _act(app, message_id, as_user, "cancel")
    click.echo(f"message {message_id} is {state}")


COMMANDS = [compose, preview, show, list_cmd, submit, approve, reject, cancel]
