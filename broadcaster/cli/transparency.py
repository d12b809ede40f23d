"""`broadcaster records keygen` and `broadcaster records witness`: the signing key of the
ledger's checkpoints, and a witness that keeps them from another host (records/signing.py,
records/witness.py). The `records` group (cli/records.py) adds them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from broadcaster.cli.app import App, json_option, pass_app
from broadcaster.cli.base import emit_json, example
from broadcaster.core.errors import BadInput


@click.command(
    "keygen",
    epilog=example("broadcaster records keygen", "broadcaster records keygen --rotate"),
)
@click.option(
    "--rotate",
    is_flag=True,
    help="Start a new key in place of the current one; the old key signs the handover.",
)
@click.option(
    "--lost",
    is_flag=True,
    help="The key's file is lost (no copy): start a new key, without a handover.",
)
@json_option
@pass_app
def records_keygen(app: App, rotate: bool, lost: bool, as_json: bool) -> None:
    """Create the key that signs the ledger's checkpoints, in the owner-only file that the
    district file's [records] signing_key names (never overwritten)."""
    from broadcaster.records import signing

    path = app.district.signing_key_path
    if path is None:
        raise BadInput(
            'no key file named: add [records] signing_key = "ledger.key" to the district file '
            "(a path beside it, outside the database's backups)"
        )
    if rotate and lost:
        raise BadInput("--rotate needs the current key and --lost says it is gone: give one")
    old = None
    with app.session() as session:
        if rotate:
            old, signer = signing.rotate_key(session, path)
        else:
            signer = signing.create_key(session, path, signing.origin(app.district), lost=lost)
    view = {
        "key_file": str(path),
        "key_id": signer.key_id,
        "public_key": signer.public_key,
        "replaces": old.key_id if old else None,
        "history": str(signing.history_path(path)),
    }
    if as_json:
        return emit_json(view)
    if old:
        click.echo(f"key {signer.key_id} replaces key {old.key_id} (handover signed by both)")
    else:
        click.echo(f"key {signer.key_id} written to {path} (owner-only)")
    click.echo(f"public key: {signer.public_key}")
    click.echo(f"keep a copy of {path} offline; {view['history']} lists every public key")


@click.command(
    "witness",
    epilog=example(
        "broadcaster records witness https://alerts.example.org --store /var/lib/ledger-witness"
    ),
)
@click.argument("url")
@click.option(
    "--store",
    required=True,
    type=click.Path(path_type=Path),
    help="This witness's folder: the pinned key and every checkpoint kept (append-only).",
)
@click.option(
    "--key",
    "key_text",
    metavar="PUBKEY",
    help="The log's public key (NAME+HASH+KEY, from /ledger/key); else pinned on first use.",
)
@json_option
def records_witness(url: str, store: Path, key_text: str | None, as_json: bool) -> None:
    """Fetch the site's latest checkpoint, verify its signature and that it extends the last
    one kept (a consistency proof), and keep it; exit 1 naming the sizes when the log was
    rewritten."""
    from broadcaster.records import witness

    result = witness.observe(url, store, key_text)
    if as_json:
        emit_json(result.view)
    elif result.ok:
        click.echo(result.summary)
    else:
        click.echo(f"ledger REWRITTEN: {result.problem}", err=True)
    if not result.ok:
        sys.exit(1)


COMMANDS = [records_keygen, records_witness]
