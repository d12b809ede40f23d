"""The `broadcaster` command line: thin verbs over the service functions.

Exit codes: 0 success; 2 bad input or a refusal (one line on stderr says what and why);
1 an internal error. A refused command changes nothing: each verb runs in one transaction.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from broadcaster.authoring import corrections, messages
from broadcaster.authoring.catalog import Catalog
from broadcaster.core import contacts, db, identity, ledger, login_throttle, owner_only, sso
from broadcaster.core.config import ROLES, DistrictConfig, Settings, load_district
from broadcaster.core.errors import BadInput, BroadcasterError
from broadcaster.core.models import MAX_ID, User
from broadcaster.delivery import dispatch, scheduling, status
from broadcaster.delivery.celery_app import QUEUES, configure, run_worker
from broadcaster.operations import doctor
from broadcaster.records import export, export_verify, holds, report, retention

SEVERITY_STYLE = {"block": "bold red", "warn": "yellow"}
# Message and hold ids: out of range is bad input (exit 2), never a database overflow.
ROW_ID = click.IntRange(1, MAX_ID)


class App:
    """What every verb needs, built on first use so `--help` touches no database."""

    def __init__(self) -> None:
        self.settings = Settings()
        self._prepared = False

    @cached_property
    def district(self) -> DistrictConfig:
        return load_district(self.settings.config_path)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.district)

    @property
    def url(self) -> str:
        return self.settings.effective_database_url

    def prepare(self) -> None:
        """The database, created and migrated if it is the embedded one."""
        if not self._prepared:
            db.prepare(self.url, self.settings.is_embedded)
            self._prepared = True

    @contextmanager
    def session(self) -> Iterator[Session]:
        self.prepare()
        with db.session_scope(self.url) as session:
            yield session

    def actor(self, session: Session, name: str, token: str) -> User:
        return identity.authenticate(session, name, token)


def read_token(name: str) -> str:
    """The acting user's token: BROADCASTER_TOKEN, or a hidden prompt at a terminal."""
    token = os.environ.get("BROADCASTER_TOKEN", "").strip()
    if token:
        return token
    if sys.stdin.isatty():
        return click.prompt(f"Token for {name}", hide_input=True).strip()
    raise BadInput(f"set BROADCASTER_TOKEN to {name}'s personal token (or run at a terminal)")


def read_new_password(name: str) -> str:
    """A new password: asked twice, hidden, at a terminal; otherwise the first line of standard
    input (a script or a password manager), with no echo warning and no confirmation."""
    if sys.stdin.isatty():
        return click.prompt(
            f"New password for {name}", hide_input=True, confirmation_prompt=True, err=True
        )
    return sys.stdin.readline().rstrip("\r\n")


class BroadcasterGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BroadcasterError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.ClickException, click.Abort):
            raise
        except Exception as exc:  # an internal error: say so in one line, no secrets, exit 1
            if os.environ.get("BROADCASTER_DEBUG"):
                raise
            first_line = (str(exc).splitlines() or [""])[0][:300]
            click.echo(f"internal error: {type(exc).__name__}: {first_line}", err=True)
            ctx.exit(1)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def console() -> Console:
    return Console(soft_wrap=True, highlight=False)


pass_app = click.make_pass_decorator(App, ensure=True)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
as_option = click.option(
    "--as",
    "as_user",
    required=True,
    metavar="NAME",
    help="Act as this user; the token comes from BROADCASTER_TOKEN or a prompt.",
)


@click.group(cls=BroadcasterGroup)
@click.version_option(package_name="broadcaster")
def cli() -> None:
    """Emergency and time-sensitive notifications for a school district."""


# --- database -------------------------------------------------------------------------------


@cli.group("db", cls=BroadcasterGroup)
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Migrate the database to the current schema."""
    revision = db.upgrade(app.url)
    click.echo(f"database at revision {revision}")


# --- templates ------------------------------------------------------------------------------


@cli.group("templates", cls=BroadcasterGroup)
def templates_group() -> None:
    """The template library."""


@templates_group.command("list")
@json_option
@pass_app
def templates_list(app: App, as_json: bool) -> None:
    """List the templates."""
    rows = [
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
    table = Table("name", "title", "category", "pre-approved", "channels", "locales")
    for row in rows:
        table.add_row(
            row["name"],
            row["title"],
            row["category"],
            "yes" if row["pre_approved"] else "",
            ",".join(row["channels"]),
            ",".join(row["locales"]),
        )
    console().print(table)


@templates_group.command("show")
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
    table = Table("variable", "type", "required", "limit", "choices")
    for var in described["variables"]:
        table.add_row(
            var["name"],
            var["type"],
            "yes" if var["required"] else "",
            str(var["max_length"] or ""),
            ", ".join(var["choices"] or []),
        )
    out.print(table)


# --- messages -------------------------------------------------------------------------------


def parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--var {pair!r}: write KEY=VALUE")
        if key in values:
            raise BadInput(f"--var {key} is given twice")
        values[key] = value
    return values


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise BadInput("an empty list: name at least one, separated by commas")
    return items


def print_preview(view: dict[str, Any]) -> None:
    out = console()
    out.print(
        Text(
            f"Message {view['id']} ({view['kind']}, {view['template']}) is {view['state']}", "bold"
        )
    )
    if "sms" in {r["channel"] for r in view["renditions"]}:
        who = view["audience"] or "the test allowlist"
        out.print(Text(f"Texted to: {who} ({view['recipients']} phone numbers)"))
    print_timing(out, view)
    for r in view["renditions"]:
        if r["channel"] == "x":
            counts = f"{r['weighted_length']}/280 weighted"
        elif r["channel"] == "sms":
            counts = f"{r['segments']} segment(s) {r['encoding']}"
            if r["ucs2_chars"]:
                counts += f" (UCS-2 because of {''.join(r['ucs2_chars'])})"
        else:
            counts = f"{r['length']} characters"
        out.rule(Text(f"{r['channel']} · {r['locale']} · {counts}"))
        out.print(Text(r["text"]))
    if view["findings"]:
        out.rule(Text("findings"))
        for f in view["findings"]:
            where = "/".join(filter(None, [f["channel"], f["locale"]]))
            out.print(
                Text(
                    f"{f['severity'].upper():5} {f['check']} [{where}] {f['detail']}",
                    SEVERITY_STYLE[f["severity"]],
                )
            )
    else:
        out.print(Text("no findings", "green"))


def print_timing(out: Console, view: dict[str, Any]) -> None:
    """send_at and valid_until, in district time with the zone's abbreviation."""
    if view["send_at_local"]:
        out.print(Text(f"Sends at: {view['send_at_local']}"))
    if view["valid_until_local"]:
        out.print(Text(f"Valid until: {view['valid_until_local']}"))


def compose_options(command):  # type: ignore[no-untyped-def]
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
                type=click.Choice(["actual", "exercise", "test"]),
                default="actual",
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


@cli.command()
@compose_options
@pass_app
def compose(app: App, template: str, as_user: str, as_json: bool, **options: Any) -> None:
    """Create a draft from TEMPLATE and show its preview."""
    request = compose_request(template, options)
    token = read_token(as_user)
    with app.session() as session:
        author = app.actor(session, as_user, token)
        message = messages.compose(session, app.district, app.catalog, author, request)
        view = messages.preview_view(session, app.district, message)
    if as_json:
        return emit_json(view)
    print_preview(view)
    if any(f["severity"] == "block" for f in view["findings"]):
        click.echo("This draft has blocking findings and cannot be submitted.")
    else:
        click.echo(f"Next: broadcaster submit {view['id']} --as {as_user}")


@cli.command()
@click.argument("message_id", type=ROW_ID)
@json_option
@pass_app
def preview(app: App, message_id: int, as_json: bool) -> None:
    """Show a message's renditions, counts and findings."""
    with app.session() as session:
        view = messages.preview_view(
            session, app.district, messages.get_message(session, message_id)
        )
    emit_json(view) if as_json else print_preview(view)


@cli.command()
@click.argument("message_id", type=ROW_ID)
@json_option
@pass_app
def show(app: App, message_id: int, as_json: bool) -> None:
    """Show everything about a message: renditions, findings, approvals, timeline."""
    with app.session() as session:
        view = messages.detail_view(
            session, app.district, messages.get_message(session, message_id)
        )
    if as_json:
        return emit_json(view)
    print_preview(view)
    out = console()
    out.rule(Text("timeline"))
    for step in view["timeline"]:
        out.print(Text(f"{step['at']}  {step['event']:<32} {step['actor'] or ''}"))


@cli.command("list")
@click.option("--state", help="Only messages in this state.")
@json_option
@pass_app
def list_cmd(app: App, state: str | None, as_json: bool) -> None:
    """List messages, newest first."""
    with app.session() as session:
        rows = [messages.summary_view(m) for m in messages.list_messages(session, state)]
    if as_json:
        return emit_json(rows)
    table = Table("id", "state", "kind", "template", "author", "created")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["state"],
            row["kind"],
            row["template"],
            row["author"],
            row["created_at"][:19],
        )
    console().print(table)


def _act(app: App, message_id: int, as_user: str, action: str, **kwargs: Any) -> str:
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        message = messages.get_message(session, message_id)
        getattr(messages, action)(session, app.district, message, actor, **kwargs)
        return message.state


@cli.command()
@click.argument("message_id", type=ROW_ID)
@as_option
@pass_app
def submit(app: App, message_id: int, as_user: str) -> None:
    """Submit a draft for approval."""
    state = _act(app, message_id, as_user, "submit")
    click.echo(f"message {message_id} is {state}; an approver must approve it")


@cli.command()
@click.argument("message_id", type=ROW_ID)
@as_option
@click.option("--ack-warnings", is_flag=True, help="Acknowledge the message's warnings.")
@pass_app
def approve(app: App, message_id: int, as_user: str, ack_warnings: bool) -> None:
    """Approve a submitted message (not your own). Approval is the go: it is dispatched at once."""
    token = read_token(as_user)
    with app.session() as session:
        approver = app.actor(session, as_user, token)
        message = messages.get_message(session, message_id)
        planned = messages.approve_and_dispatch(
            session, app.district, message, approver, ack_warnings=ack_warnings
        )
        when = scheduling.scheduled_for(message, app.district)
    release(app, message_id, planned, scheduled_for=when)


def release(
    app: App,
    message_id: int,
    planned: list[dispatch.Batch],
    quiet: bool = False,
    scheduled_for: str | None = None,
) -> None:
    """After the commit: ring the broker. If it is down, the sweep enqueues the rows later.
    A scheduled message has nothing to ring for yet: the beat dispatches it when it is due."""
    if scheduled_for:
        click.echo(
            f"message {message_id} approved and scheduled for {scheduled_for}; "
            f"`broadcaster cancel {message_id}` stops it",
            err=quiet,
        )
        return
    total = sum(len(b.ids) for b in planned)
    warning = dispatch.release(app.settings, planned)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"message {message_id} approved and dispatching: {total} deliveries queued; "
        f"follow with `broadcaster status {message_id} --follow`",
        err=quiet,
    )


@cli.command()
@click.argument("message_id", type=ROW_ID)
@as_option
@click.option("--reason", required=True, help="Why, for the author.")
@pass_app
def reject(app: App, message_id: int, as_user: str, reason: str) -> None:
    """Reject a submitted message, with a reason."""
    state = _act(app, message_id, as_user, "reject", reason=reason)
    click.echo(f"message {message_id} is {state}")


@cli.command()
@click.argument("message_id", type=ROW_ID)
@as_option
@pass_app
def cancel(app: App, message_id: int, as_user: str) -> None:
    """Cancel a message before it is dispatched (a scheduled one too)."""
    state = _act(app, message_id, as_user, "cancel")
    click.echo(f"message {message_id} is {state}")


# --- records --------------------------------------------------------------------------------


@cli.group("records", cls=BroadcasterGroup)
def records_group() -> None:
    """The public-records ledger."""


@records_group.command("verify")
@json_option
@pass_app
def records_verify(app: App, as_json: bool) -> None:
    """Check the ledger's hash chain; exit 1 naming the first bad entry."""
    app.prepare()
    # One snapshot: entries that workers append while the walk runs are not "removed" ones.
    with db.snapshot_scope(app.url) as session:
        result = ledger.verify(session)
    if as_json:
        emit_json(
            {
                "ok": result.ok,
                "entries": result.entries,
                "bad_entry": result.bad_seq,
                "problem": result.problem,
            }
        )
    elif result.ok:
        click.echo(f"ledger intact: {result.entries} entries verified")
    else:
        click.echo(f"ledger BROKEN: {result.problem}", err=True)
    if not result.ok:
        sys.exit(1)


@records_group.command("hold")
@click.option("--message", "message_id", type=ROW_ID, help="Hold this message.")
@click.option("--from", "first", metavar="YYYY-MM-DD", help="Hold messages active from this day.")
@click.option("--to", "last", metavar="YYYY-MM-DD", help="... through this day (district time).")
@click.option("--reason", required=True, help="Why (a request, litigation, an audit).")
@as_option
@json_option
@pass_app
def records_hold(
    app: App,
    message_id: int | None,
    first: str | None,
    last: str | None,
    reason: str,
    as_user: str,
    as_json: bool,
) -> None:
    """Place a legal hold: no purge touches what it covers until it is released."""
    first_day = holds.parse_day(first, "--from") if first else None
    last_day = holds.parse_day(last, "--to") if last else None
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        hold = holds.place(session, app.district, actor, reason, message_id, first_day, last_day)
        view = holds.view(app.district, hold)
    if as_json:
        return emit_json(view)
    what = f"message {view['message']}" if view["message"] else f"{view['from']}..{view['to']}"
    click.echo(f"hold {view['hold']} placed on {what}")


@records_group.command("release")
@click.argument("hold_id", type=ROW_ID)
@as_option
@pass_app
def records_release(app: App, hold_id: int, as_user: str) -> None:
    """Release a legal hold."""
    token = read_token(as_user)
    with app.session() as session:
        holds.release(session, app.district, app.actor(session, as_user, token), hold_id)
    click.echo(f"hold {hold_id} released")


@records_group.command("holds")
@click.option("--all", "include_released", is_flag=True, help="Also the released ones.")
@json_option
@pass_app
def records_holds(app: App, include_released: bool, as_json: bool) -> None:
    """List legal holds."""
    with app.session() as session:
        rows = [holds.view(app.district, h) for h in holds.list_holds(session, include_released)]
    if as_json:
        return emit_json(rows)
    table = Table("hold", "covers", "reason", "placed", "released")
    for row in rows:
        covers = f"message {row['message']}" if row["message"] else f"{row['from']}..{row['to']}"
        released = f"{row['released_by']} {row['released_at'][:10]}" if row["released_at"] else ""
        placed = f"{row['placed_by']} {row['placed_at'][:10]}"
        table.add_row(str(row["hold"]), covers, row["reason"], placed, released)
    console().print(table)


@records_group.command("purge")
@click.option("--dry-run", is_flag=True, help="List what would be destroyed; change nothing.")
@as_option
@json_option
@pass_app
def records_purge(app: App, dry_run: bool, as_user: str, as_json: bool) -> None:
    """Destroy what is past retention and not on hold, with a destruction record in the ledger."""
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        result = retention.purge(session, app.district, actor, dry_run=dry_run)
    if as_json:
        return emit_json({"dry_run": dry_run, **result.as_dict()})
    verb = "would destroy" if dry_run else "destroyed"
    for due in result.due:
        what = "content" if due.scope == retention.CONTENT else "recipients' phone numbers"
        click.echo(
            f"{verb} message {due.message} {what} ({due.rule}; communicated "
            f"{due.communicated[:10]}): {len(due.entries)} ledger payloads, "
            f"{due.phone_numbers} phone numbers"
        )
    for held in result.held:
        click.echo(f"kept message {held.message}: on hold {', '.join(map(str, held.holds))}")
    if result.opt_out_entries:
        click.echo(f"{verb} {len(result.opt_out_entries)} opt-out entries' phone numbers")
    if result.empty:
        click.echo("nothing is past retention")
    elif result.record:
        click.echo(f"destruction record: ledger entry {result.record}")


@records_group.command("export")
@click.option("--from", "first", metavar="YYYY-MM-DD", help="Messages composed from this day.")
@click.option("--to", "last", metavar="YYYY-MM-DD", help="... through this day (district time).")
@click.option("--message", "message_id", type=ROW_ID, help="Only this message.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="A new folder.")
@click.option(
    "--include-recipients",
    is_flag=True,
    help="Leave phone numbers unmasked (records officers only).",
)
@click.option(
    "--include-student-data",
    is_flag=True,
    help="Leave in the text the FERPA checks matched (records officers only).",
)
@as_option
@json_option
@pass_app
def records_export(
    app: App,
    first: str | None,
    last: str | None,
    message_id: int | None,
    out: Path,
    include_recipients: bool,
    include_student_data: bool,
    as_user: str,
    as_json: bool,
) -> None:
    """Export messages, renditions, approvals, deliveries and the ledger slice, with a manifest."""
    first_day = holds.parse_day(first, "--from") if first else None
    last_day = holds.parse_day(last, "--to") if last else None
    export.check_target(out)
    token = read_token(as_user)
    with app.session() as session:
        actor = app.actor(session, as_user, token)
        result = export.build(
            session,
            app.district,
            actor,
            first=first_day,
            last=last_day,
            message_id=message_id,
            include_recipients=include_recipients,
            include_student_data=include_student_data,
        )
        export.publish(session, actor, result, out)
    if as_json:
        return emit_json({"out": str(out), "messages": result.messages, "files": len(result.files)})
    click.echo(
        f"exported {len(result.messages)} messages to {out} ({len(result.files)} files); "
        f"check it with `broadcaster records verify-export {out}`"
    )


@records_group.command("verify-export")
@click.argument("folder", type=click.Path(path_type=Path))
@json_option
def records_verify_export(folder: Path, as_json: bool) -> None:
    """Check an export's files against its manifest and its ledger slice; exit 1 naming the
    first bad file."""
    result = export_verify.verify_export(folder)
    if as_json:
        emit_json(dataclasses.asdict(result))
    elif result.ok:
        click.echo(f"export intact: {result.files} files, {result.entries} ledger entries verified")
    else:
        click.echo(f"export BROKEN: {result.problem}", err=True)
    if not result.ok:
        sys.exit(1)


@cli.command("report")
@click.argument("message_id", type=ROW_ID)
@json_option
@pass_app
def report_cmd(app: App, message_id: int, as_json: bool) -> None:
    """After-action report: timeline, who did what, per-channel outcomes, failures, retries."""
    with app.session() as session:
        view = report.after_action(session, messages.get_message(session, message_id))
    emit_json(view) if as_json else print_report(view)


def print_report(view: dict[str, Any]) -> None:
    out = console()
    out.print(Text(f"Message {view['id']}: {view['title']} ({view['template']})", "bold"))
    out.print(Text(f"{view['kind']}, {view['category']}, {view['state']}"))
    if view["review"]:
        review = view["review"]
        out.print(Text(f"REVIEW: {review['why']}: {review['basis']}, by {review['by']}", "yellow"))
    out.rule(Text("timeline"))
    for step in view["timeline"]:
        extra = step.get("basis") or step.get("reason") or step.get("deliveries") or ""
        who = step.get("actor") or ""
        out.print(Text(f"{step['at'][:23]}  {step['event']:<28} {who:<10} {extra}".rstrip()))
    out.rule(Text("channels"))
    for name, channel in view["channels"].items():
        statuses = ", ".join(f"{s} {n}" for s, n in channel["statuses"].items()) or "none"
        first, last = channel["first_delivery"] or "-", channel["last_delivery"] or "-"
        out.print(
            Text(
                f"{name}: {channel['deliveries']} deliveries ({statuses}); "
                f"first {first}, last {last}; "
                f"{channel['retried']} retries, {channel['failed']} failed"
            )
        )
        for failure in channel["failures"]:
            out.print(Text(f"  failed {failure['target']}: {failure['error']}", "red"))
        for retry in channel["retries"]:
            out.print(Text(f"  retried {retry['target']} ({retry['event']}): {retry['error']}"))


# --- users ----------------------------------------------------------------------------------


@cli.group("users", cls=BroadcasterGroup)
def users_group() -> None:
    """Users, roles and personal tokens."""


@users_group.command("add")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE",
    help=f"A role ({', '.join(ROLES)}); repeat for several.",
)
@click.option(
    "--as", "as_user", metavar="ADMIN", help="The admin adding the user (once one exists)."
)
@json_option
@pass_app
def users_add(
    app: App, name: str, roles: tuple[str, ...], as_user: str | None, as_json: bool
) -> None:
    """Add a user and print their personal token (shown only this once)."""
    token_of_admin = read_token(as_user) if as_user else None
    with app.session() as session:
        by = app.actor(session, as_user, token_of_admin) if as_user and token_of_admin else None
        user, token = identity.add_user(session, app.district, name, list(roles), by)
        data = {"name": user.name, "roles": user.roles, "token": token}
    if as_json:
        return emit_json(data)
    click.echo(f"added {data['name']} ({', '.join(data['roles'])})")
    click.echo(f"token (shown once; keep it secret): {token}")


@users_group.command("passwd")
@click.argument("name")
@click.option(
    "--as", "as_user", metavar="USER", help="Who sets it: NAME themself (default) or an admin."
)
@pass_app
def users_passwd(app: App, name: str, as_user: str | None) -> None:
    """Set NAME's password for the web console (asked twice, never echoed; or piped in)."""
    as_user = as_user or name
    token = read_token(as_user)
    password = read_new_password(name)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        identity.set_password(session, app.district, identity.get_user(session, name), password, by)
    click.echo(f"password set for {name}")


@users_group.command("token")
@click.argument("name")
@click.option(
    "--as", "as_user", metavar="USER", help="Who replaces it: NAME themself (default) or an admin."
)
@json_option
@pass_app
def users_token(app: App, name: str, as_user: str | None, as_json: bool) -> None:
    """Replace NAME's personal token and print the new one (shown only this once); the old token
    stops working at once."""
    as_user = as_user or name
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        new = identity.replace_token(session, app.district, identity.get_user(session, name), by)
    if as_json:
        return emit_json({"name": name, "token": new})
    click.echo(f"new token for {name} (shown once; keep it secret; the old one no longer works):")
    click.echo(new)


def _set_disabled(app: App, name: str, as_user: str, disabled: bool) -> None:
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        identity.set_disabled(session, app.district, identity.get_user(session, name), disabled, by)
    click.echo(f"{name} is {'disabled' if disabled else 'enabled'}")


@users_group.command("disable")
@click.argument("name")
@as_option
@pass_app
def users_disable(app: App, name: str, as_user: str) -> None:
    """Disable NAME (admins): its token, password and single sign-on are refused and its console
    sessions end. The last enabled admin cannot be disabled."""
    _set_disabled(app, name, as_user, True)


@users_group.command("enable")
@click.argument("name")
@as_option
@pass_app
def users_enable(app: App, name: str, as_user: str) -> None:
    """Enable NAME again (admins), with the token and password it had."""
    _set_disabled(app, name, as_user, False)


@users_group.command("list")
@json_option
@pass_app
def users_list(app: App, as_json: bool) -> None:
    """List users and their roles."""
    with app.session() as session:
        rows = identity.list_users(session, app.district)
    if as_json:
        return emit_json(rows)
    table = Table("name", "roles", "added", "state")
    for row in rows:
        state = "disabled" if row["disabled"] else "enabled"
        table.add_row(row["name"], ", ".join(row["roles"]), row["created_at"][:19], state)
    console().print(table)


issuer_option = click.option(
    "--issuer", required=True, help="The identity provider's issuer (`iss`), its https:// address."
)
subject_option = click.option(
    "--subject", required=True, help="The person's `sub` at that provider (not their name)."
)


@users_group.command("link")
@click.argument("name")
@issuer_option
@subject_option
@as_option
@json_option
@pass_app
def users_link(app: App, name: str, issuer: str, subject: str, as_user: str, as_json: bool) -> None:
    """Let a single sign-on identity (issuer, subject) sign in to the console as NAME."""
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        user = identity.get_user(session, name)
        sso.link(session, app.district, user, issuer, subject, by)
        linked = sso.identities(session, user)
    if as_json:
        return emit_json(linked)
    click.echo(f"linked {subject} at {issuer} to {name}")


@users_group.command("unlink")
@click.argument("name")
@issuer_option
@subject_option
@as_option
@pass_app
def users_unlink(app: App, name: str, issuer: str, subject: str, as_user: str) -> None:
    """Remove a single sign-on link of NAME; NAME's console sessions end."""
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        sso.unlink(session, app.district, identity.get_user(session, name), issuer, subject, by)
    click.echo(f"unlinked {subject} at {issuer} from {name}")


@users_group.command("identities")
@json_option
@pass_app
def users_identities(app: App, as_json: bool) -> None:
    """List the single sign-on identities linked to users."""
    with app.session() as session:
        rows = sso.identities(session)
    if as_json:
        return emit_json(rows)
    table = Table("name", "issuer", "subject", "linked by", "linked")
    for row in rows:
        table.add_row(
            row["name"], row["issuer"], row["subject"], row["linked_by"], row["linked_at"][:19]
        )
    console().print(table)


@users_group.command("unlock")
@click.argument("name")
@as_option
@pass_app
def users_unlock(app: App, name: str, as_user: str) -> None:
    """Clear NAME's console sign-in delays from every address (after failed passwords)."""
    token = read_token(as_user)
    with app.session() as session:
        by = app.actor(session, as_user, token)
        cleared = login_throttle.unlock(session, app.district, identity.get_user(session, name), by)
    click.echo(f"unlocked {name} ({cleared} address(es) cleared)")


# --- delivery ---------------------------------------------------------------------------------


def print_status(view: dict[str, Any]) -> None:
    out = console()
    out.print(Text(f"Message {view['id']} is {view['state']}", "bold"))
    print_timing(out, view)
    table = Table("channel", *status.STATUSES)
    for channel, counts in view["deliveries"].items():
        table.add_row(channel, *(str(counts[s]) for s in status.STATUSES))
    out.print(table)
    for failure in view["failures"]:
        out.print(
            Text(f"failed {failure['channel']} {failure['target']}: {failure['error']}", "red")
        )
    retraction = view.get("retraction")
    if retraction:
        print_retraction(out, retraction)


def print_retraction(out: Console, retraction: dict[str, Any]) -> None:
    """What was taken down and, above all, what is still up."""
    texts = retraction["corrections"]
    out.print(
        Text(
            f"Retraction (notice {retraction['notice']}, {retraction['state']}): "
            f"{len(retraction['deleted'])} post(s) deleted; correction texts sent "
            f"{texts['sent'] + texts['delivered']}, failed {texts['failed']}, "
            f"waiting {texts['queued'] + texts['sending']}"
        )
    )
    for post in retraction["still_live"]:
        why = f": {post['error']}" if post["error"] else f" ({post['status']})"
        out.print(
            Text(f"STILL LIVE {post['channel']} {post['account']} {post['post']}{why}", "red")
        )


def follow(app: App, message_id: int, timeout: float) -> dict[str, Any]:
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
                view = status.status_view(
                    session, messages.get_message(session, message_id), app.district
                )
            for channel, counts in view["deliveries"].items():
                total = sum(counts.values())
                done = total - counts["queued"] - counts["sending"]
                detail = f"sent {counts['sent'] + counts['delivered']}, failed {counts['failed']}"
                if channel not in bars:
                    bars[channel] = progress.add_task(channel, total=total, detail=detail)
                progress.update(bars[channel], completed=done, total=total, detail=detail)
            if not status.in_progress(view) or time.monotonic() > deadline:
                return view
            time.sleep(0.3)


def wait_done(app: App, message_id: int, timeout: float) -> dict[str, Any]:
    """The status once the message is done, or as it stands when the timeout runs out."""
    deadline = time.monotonic() + timeout
    while True:
        with app.session() as session:
            view = status.status_view(
                session, messages.get_message(session, message_id), app.district
            )
        if not status.in_progress(view) or time.monotonic() >= deadline:
            return view
        time.sleep(0.3)


@cli.command("status")
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
    emit_json(view) if as_json else print_status(view)


@cli.command()
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
        message, planned = messages.trigger_and_dispatch(
            session, app.district, app.catalog, commander, request
        )
        message_id = message.id
        when = scheduling.scheduled_for(message, app.district)
    release(app, message_id, planned, quiet=as_json, scheduled_for=when)
    if as_json:
        emit_json(wait_done(app, message_id, 600 if follow_ else 0))
    elif follow_:
        print_status(follow(app, message_id, 600))


@cli.command()
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
        target, planned = corrections.retry(session, app.district, message, actor)
        target_id = target.id
    release(app, target_id, planned)


@cli.command()
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
        follow_up, planned = corrections.update(
            session, app.district, app.catalog, author, original, request, at_once=yes
        )
        view = messages.preview_view(session, app.district, follow_up)
    if yes:
        release(app, view["id"], planned, quiet=as_json)
    if as_json:
        return emit_json(view)
    print_preview(view)
    if not yes:
        click.echo(
            f"Update of message {message_id}. Next: broadcaster submit {view['id']} --as {as_user}"
        )


@cli.command()
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
        notice, planned = corrections.retract(
            session, app.district, app.catalog, original, actor, reason
        )
        notice_id = notice.id
    warning = dispatch.release(app.settings, planned)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        return emit_json({"id": message_id, "notice": notice_id})
    click.echo(
        f"message {message_id} is retracting: {sum(len(b.ids) for b in planned)} deletions and "
        f"correction texts queued (notice {notice_id}); follow with "
        f"`broadcaster status {message_id} --follow`"
    )


@cli.group("contacts", cls=BroadcasterGroup)
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
    click.echo(
        f"imported {result.rows} rows: {result.phones} phone numbers, "
        f"{result.opted_out} opted out (replaced {result.replaced} rows)"
    )


@cli.command()
@click.option(
    "--queues",
    default=",".join(QUEUES),
    show_default=True,
    help="Comma-separated queues to consume.",
)
@click.option("--concurrency", default=16, show_default=True, help="Threads for sending.")
@click.option(
    "--beat/--no-beat",
    default=True,
    show_default=True,
    help="Also run the periodic sweep (one per deployment is enough; more is harmless).",
)
@click.option("--loglevel", default="info", show_default=True)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on this port (no authentication: keep it on a private address).",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="The metrics port's address."
)
@pass_app
def worker(
    app: App,
    queues: str,
    concurrency: int,
    beat: bool,
    loglevel: str,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run a Celery worker with the settings delivery relies on."""
    for queue in split_list(queues) or []:
        if queue not in QUEUES:
            raise BadInput(f"unknown queue {queue!r} (queues: {', '.join(QUEUES)})")
    db.prepare(app.url, app.settings.is_embedded)
    # Before configure() starts any embedded broker.
    doctor.check_at_start(app.settings, lambda line: click.echo(f"warning: {line}", err=True))
    celery = configure(app.settings)
    argv = [
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--queues",
        queues,
        "--hostname",
        f"broadcaster-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        loglevel,
    ]
    if beat:
        # Celery creates the beat's schedule file with the umask's mode: owner-only, like the
        # rest of the home.
        os.umask(0o077)
        owner_only.ensure_folder(app.settings.home)
        argv += ["--beat", "--schedule", str(app.settings.home / "celerybeat-schedule")]
    if metrics_port:
        from broadcaster.delivery.metrics import serve_worker_metrics

        serve_worker_metrics(app.settings, celery.conf.broker_url, metrics_host, metrics_port)
    # Non-zero when the worker stopped on a fatal error, so systemd or compose restart it.
    sys.exit(run_worker(argv))


@cli.command()
@click.option("--port", default=8025, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def sandbox(port: int, host: str) -> None:
    """Run the provider sandbox (X, Facebook, Twilio) in the foreground."""
    from provider_sandbox import Sandbox

    with Sandbox(host=host, port=port) as running:
        click.echo(
            f"provider sandbox at {running.url}; export BROADCASTER_SANDBOX_URL={running.url}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@pass_app
def web(app: App, host: str, port: int) -> None:
    """Serve the web application: public alerts and feeds, the staff console, the API and the
    Twilio web hooks. Use gunicorn in production (deploy/)."""
    from broadcaster.web import create_app

    db.prepare(app.url, app.settings.is_embedded)
    create_app(app.settings).run(host=host, port=port)


@cli.command("doctor")
@json_option
@pass_app
def doctor_cmd(app: App, as_json: bool) -> None:
    """Check this deployment: one line per check; exit 1 when any finds a problem."""
    checks = doctor.run(app.settings)
    found = doctor.report(checks)
    if as_json:
        emit_json(found)
    else:
        for check in checks:
            click.echo(f"{'ok' if check.ok else 'PROBLEM':8} {check.name}: {check.detail}")
    if not found["ok"]:
        sys.exit(1)


@cli.command()
@pass_app
def demo(app: App) -> None:
    """The whole flow on this machine: embedded Redis, SQLite, the sandbox and one worker."""
    from broadcaster.operations.demo import run_demo

    sys.exit(run_demo())


def main() -> None:
    cli(prog_name="broadcaster")
