"""Signed checkpoints (issue 16, item 2): a checkpoint signs the tree as it is, is stored and
named in the ledger, is not signed again while nothing new was added, verifies only with the
log's keys, and its rows are append-only; a deleted one is noticed through its ledger entry."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from broadcaster.core import db, ledger, ledger_tree, merkle
from broadcaster.core.models import LedgerCheckpoint, LedgerEntry
from broadcaster.records import checkpoints, signing
from broadcaster.records.signing import NoteError
from tests.signed_ledger import signed_config, unprotect


def sign(db_url, district):
    with db.session_scope(db_url) as session:
        return checkpoints.sign_checkpoint(session, signing.load_signer(district))


def test_a_checkpoint_signs_the_tree_and_is_named_in_the_ledger(run, signed_district, db_url):
    run.json("users", "add", "ana")
    first = sign(db_url, signed_district)
    assert first is not None and first.size == 2  # the key's entry and ana's
    assert sign(db_url, signed_district) is None  # only its own entry since: nothing new
    run.json("users", "add", "ben")
    second = sign(db_url, signed_district)
    assert second is not None and second.size == 4
    with db.read_scope(db_url) as session:
        assert checkpoints.latest(session) == second
        assert second.root == ledger_tree.root_at(session, 4)
        entries = session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq)).all()
        assert [e.event for e in entries] == [
            "records.key",
            "user.added",
            "records.checkpoint",
            "user.added",
            "records.checkpoint",
        ]
        leaves = [bytes.fromhex(e.entry_hash) for e in entries[:4]]
        assert merkle.root_of(leaves) == second.root
        keys = signing.public_keys(session)
        assert checkpoints.unrecorded(session) is None
    opened = checkpoints.parse_and_verify(second.note, keys)
    assert (opened.size, opened.root, opened.key_id) == (4, second.root, second.key_id)
    lines = second.note.splitlines()
    assert lines[:3] == ["www.riversideusd.org/ledger", "4", base64.b64encode(second.root).decode()]


def test_a_checkpoint_by_another_key_or_rewritten_is_refused(run, signed_district, db_url):
    run.json("users", "add", "ana")
    real = sign(db_url, signed_district)
    with db.read_scope(db_url) as session:
        keys = signing.public_keys(session)
    impostor = signing.generate(real.origin)  # same name, not the log's key
    forged = signing.sign_note(
        checkpoints.body(real.origin, 9, real.root, real.signed_at), impostor
    )
    with pytest.raises(NoteError, match="not signed by a known key"):
        checkpoints.parse_and_verify(forged, keys)
    grown = real.note.replace("\n2\n", "\n3\n", 1)
    with pytest.raises(NoteError, match="does not verify"):
        checkpoints.parse_and_verify(grown, keys)
    for junk in ("", "\n\n", "x" * 70_000, real.note.replace("time ", "tame ")):
        with pytest.raises(NoteError):
            checkpoints.parse_and_verify(junk, keys)


def test_checkpoint_rows_are_append_only_and_a_deleted_one_is_noticed(run, signed_district, db_url):
    run.json("users", "add", "ana")
    sign(db_url, signed_district)
    with db.session_scope(db_url) as session:
        seq = session.scalar(select(LedgerCheckpoint.ledger_seq))
    for change in (
        update(LedgerCheckpoint).values(tree_size=1),
        delete(LedgerCheckpoint),
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.session_scope(db_url) as session:
            session.execute(change)
    with unprotect(db_url) as connection:
        connection.execute(text("DELETE FROM ledger_checkpoints"))
        connection.commit()
    with db.read_scope(db_url) as session:
        assert checkpoints.latest(session) is None
        assert checkpoints.unrecorded(session) == seq
        assert ledger.verify(session).ok  # the chain alone cannot tell


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_task_signs_only_with_a_key_and_only_what_is_new(run, tmp_path, monkeypatch, db_url):
    from broadcaster.records.checkpoint_task import sign_checkpoint

    for name, value in run.env.items():
        monkeypatch.setenv(name, value)
    run.json("users", "add", "ana")
    assert sign_checkpoint() is None  # the sample district configures no key
    run.env["BROADCASTER_CONFIG"] = str(signed_config(tmp_path))
    monkeypatch.setenv("BROADCASTER_CONFIG", run.env["BROADCASTER_CONFIG"])
    assert run("records", "keygen").exit_code == 0
    assert sign_checkpoint() == 2
    assert sign_checkpoint() is None
