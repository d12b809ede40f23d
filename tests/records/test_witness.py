"""Witnesses (issue 16, item 3): `records witness` on another home, over HTTP to the web app on
loopback, keeps checkpoints and detects a rewrite made after it kept one, even when the rewrite
is re-signed with the stolen key; a forged key, a forged handover and a replayed older
checkpoint are refused; a rotation handed over by the old key is followed."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlalchemy import text

from broadcaster.core import db, ledger
from broadcaster.records import checkpoints, signing, witness
from tests.conftest import Cli
from tests.signed_ledger import KEY_FILE, rewrite_history, unprotect

ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def sign(db_url, key_path):
    with db.session_scope(db_url) as session:
        return checkpoints.sign_checkpoint(session, signing.load_signer(key_path))


@pytest.fixture
def clerk(tmp_path):
    """The records clerk's witness: its own home, nothing of the district's but the URL."""
    home = tmp_path / "clerk"
    cli = Cli({"BROADCASTER_HOME": str(home)})

    def observe(site: str):
        return cli("records", "witness", site, "--store", str(home / "witness"), "--json")

    return observe


def test_a_witness_detects_a_rewrite_signed_with_the_stolen_key(
    run, signed_district, web_app, db_url, clerk, tmp_path
):
    site = web_app()
    run.json("users", "add", "ana")
    run.json("users", "add", "ben")
    sign(db_url, tmp_path / KEY_FILE)
    first = clerk(site)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) | {"ok": True, "size": 3, "kept": True} == json.loads(
        first.stdout
    )
    run.json("users", "add", "carmen")
    sign(db_url, tmp_path / KEY_FILE)
    second = json.loads(clerk(site).stdout)
    assert second["ok"] and second["kept"] and second["previous_size"] == 3

    # The insider makes ben an admin from the start, recomputes everything, and signs.
    def promote(entry: ledger.Entry) -> ledger.Entry:
        if entry.payload.get("name") == "ben":
            return dataclasses.replace(entry, payload={**entry.payload, "roles": ["admin"]})
        return entry

    rewrite_history(db_url, promote)
    with db.read_scope(db_url) as session:
        assert ledger.verify(session).ok  # the chain alone is fooled
    run.json("users", "add", "dev")  # its checkpoints' entries dropped, the tree has 4, now 5
    run.json("users", "add", "it")
    sign(db_url, tmp_path / KEY_FILE)  # the stolen key
    caught = clerk(site)
    assert caught.exit_code == 1
    kept = (tmp_path / "clerk" / "witness" / "checkpoints").read_text().splitlines()
    assert json.loads(caught.stdout)["problem"] == (
        f"the tree of size 6 does not extend the tree of size 5 kept on "
        f"{json.loads(kept[-1])['kept_at'][:10]}: entries up to 5 were rewritten"
    )
    assert len(kept) == 2  # nothing of the rewritten log was kept


@ON_SQLITE
def test_forgeries_and_replays_are_refused_and_a_rotation_is_followed(
    run, signed_district, web_app, db_url, clerk, tmp_path
):
    site = web_app()
    key = tmp_path / KEY_FILE
    run.json("users", "add", "ana")
    sign(db_url, key)
    assert clerk(site).exit_code == 0

    # A rotation: the new key's checkpoints are accepted through the handover.
    run.json("records", "keygen", "--rotate")
    rotated = sign(db_url, key)
    followed = json.loads(clerk(site).stdout)
    assert followed["ok"] and followed["key_id"] == rotated.key_id

    # An insider without the key signs with a key of their own, with a forged handover.
    impostor = signing.generate(rotated.origin)
    with unprotect(db_url) as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_keys (key_id, verifier_key, handover, created_at) "
                "VALUES (:k, :v, :h, '2026-12-03 00:00:00')"
            ),
            {
                "k": impostor.key_id,
                "v": impostor.public_key,
                "h": signing.sign_note(
                    signing.handover_text(
                        rotated_verifier(key), impostor.verifier, rotated.signed_at
                    ),
                    impostor,
                ),
            },
        )
        connection.commit()
    with db.read_scope(db_url) as session:  # the forged handover does not make it trusted
        assert impostor.key_id not in signing.public_keys(session)
        assert rotated.key_id in signing.public_keys(session)
    run.json("users", "add", "ben")
    sign(db_url, key)  # the real newest checkpoint
    forged_note = signing.sign_note(
        checkpoints.body(rotated.origin, 99, rotated.root, rotated.signed_at), impostor
    )
    with unprotect(db_url) as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_checkpoints (tree_size, root_hash, key_id, signed_at, note, "
                "ledger_seq) VALUES (99, :r, :k, '2026-12-03 00:00:00', :n, 9999)"
            ),
            {"r": rotated.root.hex(), "k": impostor.key_id, "n": forged_note},
        )
        connection.commit()
    refused = clerk(site)
    assert refused.exit_code == 1
    assert "the checkpoint is refused" in json.loads(refused.stdout)["problem"]

    # A replay: the newest checkpoints removed, the site serves an older one.
    with unprotect(db_url) as connection:
        connection.execute(
            text("DELETE FROM ledger_checkpoints WHERE tree_size > :s"), {"s": rotated.size}
        )
        connection.commit()
    assert json.loads(clerk(site).stdout)["ok"]  # the rotated one: kept already
    with unprotect(db_url) as connection:
        connection.execute(
            text("DELETE FROM ledger_checkpoints WHERE tree_size >= :s"), {"s": rotated.size}
        )
        connection.commit()
    replayed = clerk(site)
    assert replayed.exit_code == 1
    assert "went back from size" in json.loads(replayed.stdout)["problem"]
    assert witness.seen(tmp_path / "clerk" / "witness", rotated)


def rotated_verifier(key) -> signing.VerifierKey:
    return signing.load_signer(key).verifier


@ON_SQLITE
def test_a_witness_given_the_wrong_key_or_address_says_so(
    run, signed_district, web_app, db_url, tmp_path
):
    site = web_app()
    run.json("users", "add", "ana")
    sign(db_url, tmp_path / KEY_FILE)
    witness_cli = Cli({"BROADCASTER_HOME": str(tmp_path / "clerk")})
    store = str(tmp_path / "clerk" / "store")
    stranger = signing.generate("www.riversideusd.org/ledger").public_key
    wrong = witness_cli("records", "witness", site, "--store", store, "--key", stranger)
    assert wrong.exit_code == 1 and "not signed by a known key" in wrong.stderr
    # The key given is pinned: the log's own key is not taken on trust afterwards.
    again = witness_cli("records", "witness", site, "--store", store)
    assert again.exit_code == 1 and "not signed by a known key" in again.stderr
    for address, said in (
        ("ftp://example.org", "is not a web address"),
        ("http://127.0.0.1:9", "cannot fetch http://127.0.0.1:9/ledger/key"),
        (f"{site}/nowhere", "answered 404"),
    ):
        fresh = str(tmp_path / "clerk" / address.rsplit("/", 1)[-1].replace(":", "-"))
        result = witness_cli("records", "witness", address, "--store", fresh)
        assert result.exit_code == 2 and said in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1


@ON_SQLITE
def test_after_a_key_is_lost_a_witness_still_proves_nothing_it_kept_was_rewritten(
    run, signed_district, web_app, db_url, clerk, tmp_path
):
    site = web_app()
    key = tmp_path / KEY_FILE
    run.json("users", "add", "ana")
    lost = sign(db_url, key)
    assert clerk(site).exit_code == 0
    key.unlink()  # the disk died, and there was no offline copy
    refused = run("records", "keygen")
    assert refused.exit_code == 2 and "records keygen --lost" in refused.stderr
    new = run.json("records", "keygen", "--lost")
    run.json("users", "add", "ben")
    restarted = sign(db_url, key)
    with db.read_scope(db_url) as session:
        assert set(signing.public_keys(session)) == {lost.key_id, new["key_id"]}
    # The site alone cannot move a witness to a key that no old key handed over to ...
    unknown = clerk(site)
    assert unknown.exit_code == 1 and "has no handover" in unknown.stdout
    # ... its operator can, and the new key's checkpoints must still extend what it kept.
    store = str(tmp_path / "clerk" / "witness")
    told = Cli({"BROADCASTER_HOME": str(tmp_path / "clerk")})(
        "records", "witness", site, "--store", store, "--key", new["public_key"], "--json"
    )
    assert told.exit_code == 0, told.output
    assert json.loads(told.stdout) | {"size": restarted.size, "previous_size": lost.size} == (
        json.loads(told.stdout)
    )
