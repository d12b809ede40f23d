"""`broadcaster records ...` and `broadcaster report`."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from broadcaster.authoring import messages
from broadcaster.cli.app import ROW_ID, App, as_option, console, json_option, pass_app, read_token
from broadcaster.cli.base import BroadcasterGroup, emit_json, example
from broadcaster.cli.printers import print_report
from broadcaster.cli.tables import print_table
from broadcaster.cli.transparency import records_keygen, records_witness
from broadcaster.core import db
from broadcaster.core.errors import BadInput
from broadcaster.core.wording import count
from broadcaster.records import (
    export,
    export_verify,
    holds,
    report,
    retention,
    signing,
    verification,
)


@click.group("records", cls=BroadcasterGroup, epilog=example("broadcaster records verify"))
def records_group() -> None:
    """The public-records ledger."""


@records_group.command(
    "verify",
    epilog=example("broadcaster records verify --json", "broadcaster records verify --key KEY"),
)
@click.option(
    "--key",
    "key_texts",
    multiple=True,
    metavar="PUBKEY",
    help="Trust checkpoints signed by this key only (NAME+HASH+KEY, as /ledger/key gives it; "
    "repeat for rotated keys); default: the .pub-history file beside the signing key, else the "
    "key history in the database.",
)
@json_option
@pass_app
def records_verify(app: App, key_texts: tuple[str, ...], as_json: bool) -> None:
    """Check the ledger's hash chain, its Merkle tree and the newest signed checkpoint; exit 1
    naming the first entry affected."""
    keys = _given_keys(key_texts)
    app.prepare()
    keys = keys or verification.trusted_keys(app.district)
    # One snapshot: entries that workers append while the walk runs are not "removed" ones.
    with db.read_scope(app.url, snapshot=True) as session:
        result = verification.verify_records(session, keys)
    if as_json:
        emit_json(result.view)
    elif result.ok:
        click.echo(f"ledger intact: {count(result.entries, 'entry', 'entries')} verified")
        checkpoint = result.checkpoint
        if checkpoint is not None:
            click.echo(
                f"the tree of {count(result.tree_size, 'entry', 'entries')} extends the "
                f"checkpoint of {checkpoint.size} signed {checkpoint.view['signed_at']} by key "
                f"{checkpoint.key_id}"
            )
        for note in result.notes:
            click.echo(note)
    else:
        click.echo(f"ledger BROKEN: {result.problem}", err=True)
    if not result.ok:
        sys.exit(1)


@records_group.command(
    "hold",
    epilog=example(
        'broadcaster records hold --message 12 --reason "records request 2026-041" --as dev',
        'broadcaster records hold --from 2026-01-05 --to 2026-01-09 --reason "litigation" --as dev',
    ),
)
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


@records_group.command("release", epilog=example("broadcaster records release 3 --as dev"))
@click.argument("hold_id", type=ROW_ID)
@as_option
@pass_app
def records_release(app: App, hold_id: int, as_user: str) -> None:
    """Release a legal hold."""
    token = read_token(as_user)
    with app.session() as session:
        holds.release(session, app.district, app.actor(session, as_user, token), hold_id)
    click.echo(f"hold {hold_id} released")


@records_group.command("holds", epilog=example("broadcaster records holds --all"))
@click.option("--all", "include_released", is_flag=True, help="Also the released ones.")
@json_option
@pass_app
def records_holds(app: App, include_released: bool, as_json: bool) -> None:
    """List legal holds."""
    with app.session() as session:
        rows = [holds.view(app.district, h) for h in holds.list_holds(session, include_released)]
    if as_json:
        return emit_json(rows)
    lines = []
    for row in rows:
        covers = f"message {row['message']}" if row["message"] else f"{row['from']}..{row['to']}"
        released = f"{row['released_by']} {row['released_at'][:10]}" if row["released_at"] else ""
        placed = f"{row['placed_by']} {row['placed_at'][:10]}"
        lines.append((str(row["hold"]), covers, row["reason"], placed, released))
    print_table(console(), ("hold", "covers", "reason", "placed", "released"), lines)


@records_group.command("purge", epilog=example("broadcaster records purge --dry-run --as dev"))
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
            f"{due.communicated[:10]}): {count(len(due.entries), 'ledger payload')}, "
            f"{count(due.phone_numbers, 'phone number')}"
        )
    for held in result.held:
        click.echo(f"kept message {held.message}: on hold {', '.join(map(str, held.holds))}")
    if result.opt_out_entries:
        entries = count(len(result.opt_out_entries), "opt-out entry", "opt-out entries")
        click.echo(f"{verb} the phone numbers in {entries}")
    if result.empty:
        click.echo("nothing is past retention")
    elif result.record:
        click.echo(f"destruction record: ledger entry {result.record}")


@records_group.command(
    "export",
    epilog=example(
        "broadcaster records export --from 2026-01-01 --to 2026-03-31 --out ./export-q1 --as dev"
    ),
)
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
        f"exported {count(len(result.messages), 'message')} to {out} "
        f"({count(len(result.files), 'file')}); "
        f"check it with `broadcaster records verify-export {out}`"
    )


@records_group.command(
    "verify-export",
    epilog=example(
        "broadcaster records verify-export ./export-q1",
        "broadcaster records verify-export ./export-q1 --witness ~/ledger-witness",
    ),
)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--key",
    "key_texts",
    multiple=True,
    metavar="PUBKEY",
    help="The district's public key (NAME+HASH+KEY, as /ledger/key gives it; repeat for "
    "rotated keys): the export must be signed by it.",
)
@click.option(
    "--witness",
    "witness_store",
    type=click.Path(path_type=Path, file_okay=False),
    help="A witness's folder (records witness --store): its keys are trusted, and it must have "
    "kept the export's checkpoint.",
)
@json_option
def records_verify_export(
    folder: Path, key_texts: tuple[str, ...], witness_store: Path | None, as_json: bool
) -> None:
    """Check an export's signature, its files against the signed list and its manifest, its
    ledger slice and every entry's inclusion proof; exit 1 naming the first bad file."""
    if key_texts and witness_store:
        raise BadInput("give --key or --witness, not both")
    if witness_store is not None and not (witness_store / "keys").is_file():
        raise BadInput(f"--witness {witness_store}: not a witness folder (no keys file in it)")
    keys = _given_keys(key_texts)
    result = export_verify.verify_export(folder, keys, witness_store)
    if as_json:
        emit_json(dataclasses.asdict(result))
    elif result.ok:
        entries = count(result.entries, "ledger entry", "ledger entries")
        click.echo(f"export intact: {count(result.files, 'file')}, {entries} verified")
        if result.signed_by and result.checkpoint_size is not None:  # signed: at a checkpoint
            click.echo(
                f"signed by key {result.signed_by}; every entry's inclusion proof verified "
                f"against the checkpoint of {count(result.checkpoint_size, 'entry', 'entries')}"
            )
        for note in result.notes:
            click.echo(note)
    else:
        click.echo(f"export BROKEN: {result.problem}", err=True)
    if not result.ok:
        sys.exit(1)


@click.command("report", epilog=example("broadcaster report 12"))
@click.argument("message_id", type=ROW_ID)
@json_option
@pass_app
def report_cmd(app: App, message_id: int, as_json: bool) -> None:
    """After-action report: timeline, who did what, per-channel outcomes, failures, retries."""
    with app.session() as session:
        view = report.after_action(session, messages.get_message(session, message_id))
    emit_json(view) if as_json else print_report(view)


def _given_keys(texts: tuple[str, ...]) -> list[signing.VerifierKey] | None:
    """The public keys given with --key (None: none given)."""
    try:
        return [signing.parse_verifier_key(text) for text in texts] or None
    except signing.NoteError as exc:
        raise BadInput(f"--key: {exc}") from None


records_group.add_command(records_keygen)
records_group.add_command(records_witness)
COMMANDS = [records_group, report_cmd]
