"""`records verify` against an insider with write access to the database (issue 16, item 4), on
SQLite and PostgreSQL with every append-only trigger dropped: a tail cut with the head (and the
tree) made to match, an approval rewritten with every later hash and tree node recomputed, a
checkpoint row deleted, a stored tree node rewritten: each is reported with the first entry
affected and exit 1; the untouched ledger verifies."""

from __future__ import annotations

import json

import pytest
import sqlalchemy

from broadcaster.core import db, ledger, merkle
from broadcaster.records import checkpoints, signing, verification
from tests.signed_ledger import unprotect

pytestmark = pytest.mark.usefixtures("signed_district")


def add(db_url, *events: str, message_id: int | None = None) -> None:
    with db.session_scope(db_url) as session:
        ledger.append_many(
            session,
            [
                ledger.Entry(e, {"by": "ben", "n": i}, message_id, "ben")
                for i, e in enumerate(events)
            ],
        )


def sign(db_url, district) -> checkpoints.Checkpoint:
    with db.session_scope(db_url) as session:
        checkpoint = checkpoints.sign_checkpoint(session, signing.load_signer(district))
    assert checkpoint is not None
    return checkpoint


@pytest.fixture
def signed(db_url, signed_district):
    """Two messages' worth of entries, a checkpoint after each (as a message reaching its final
    state signs one), and a few entries since: 1 key entry + 20 + cp + 20 + cp + 5."""
    add(db_url, *(["message.composed", "approval.recorded"] * 10), message_id=1)
    first = sign(db_url, signed_district)
    add(db_url, *(["message.composed", "approval.recorded"] * 10), message_id=2)
    second = sign(db_url, signed_district)
    add(db_url, *["delivery.sent"] * 5, message_id=2)
    return first, second


def verify(run) -> tuple[int, dict]:
    result = run("records", "verify", "--json")
    return result.exit_code, json.loads(result.stdout)


def test_an_untouched_ledger_verifies_against_its_checkpoint(run, signed):
    _, second = signed
    code, view = verify(run)
    assert code == 0, view
    assert view["ok"] and view["entries"] == view["tree_size"] == 48
    assert view["checkpoint"] == {
        "size": second.size,
        "signed_at": second.view["signed_at"],
        "key_id": second.key_id,
    }
    assert view["problem"] is None and view["bad_seq"] is None
    text = run("records", "verify")
    assert text.exit_code == 0
    assert text.stdout.splitlines() == [
        "ledger intact: 48 entries verified",
        f"the tree of 48 entries extends the checkpoint of {second.size} signed "
        f"{second.view['signed_at']} by key {second.key_id}",
    ]


def test_a_ledger_of_one_entry_says_so_in_the_singular(run):
    """The signing key's entry, alone."""
    verified = run("records", "verify")
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.splitlines()[0] == "ledger intact: 1 entry verified"


def test_a_cut_tail_with_the_head_and_tree_rewritten_is_caught(run, signed, db_url):
    _, second = signed
    keep = second.size - 3  # cut into what the second checkpoint signed, and its own entry
    with unprotect(db_url) as conn:
        cut(conn, keep)
        conn.commit()
    code, view = verify(run)
    assert code == 1
    assert view["entries"] == keep and view["bad_seq"] == keep + 1
    assert f"ends at {keep}: entries {keep + 1}..{second.size} were removed" in view["problem"]


def rewrite_last_approval(db_url) -> int:
    """Message 2's last approval made to say someone else approved: it and every entry after it
    are appended again by the application's own code, so every later hash, the head and the
    tree's nodes are recomputed (the checkpoints' entries too: the ledger names every stored
    one). Returns the approval's seq."""
    with unprotect(db_url) as conn:
        rows = conn.execute(
            sqlalchemy.text(
                "SELECT e.seq, e.event, p.body, e.message_id, e.actor FROM ledger_entries e "
                "JOIN ledger_payloads p ON p.seq = e.seq ORDER BY e.seq"
            )
        ).all()
        approval = max(seq for seq, event, *_ in rows if event == "approval.recorded")
        cut(conn, approval - 1)
        conn.commit()
    entries = [
        ledger.Entry(
            event,
            {**json.loads(body), "by": "eve"} if seq == approval else json.loads(body),
            message_id,
            actor,
        )
        for seq, event, body, message_id, actor in rows
        if seq >= approval
    ]
    with db.session_scope(db_url) as session:
        ledger.append_many(session, entries)
    return approval


def test_an_approval_rewritten_with_every_later_hash_recomputed_is_caught(run, signed, db_url):
    first, second = signed
    approval = rewrite_last_approval(db_url)
    code, view = verify(run)
    assert code == 1
    # The first checkpoint still matches: the rewrite is after it, and before the second.
    assert first.size < approval <= second.size
    assert view["bad_seq"] == first.size + 1
    assert f"first {second.size} entries are not those the checkpoint signed" in view["problem"]
    assert f"entries after {first.size} were rewritten" in view["problem"]


def test_a_key_swapped_in_the_database_does_not_vouch_for_a_rewrite(run, signed, db_url):
    """The insider rewrites an approval, replaces the database's key list with a key of their
    own and signs the rewritten tree with it: the database's keys are fooled, the .pub-history
    file beside the real key (what `records verify` trusts) is not."""
    _, second = signed
    rewrite_last_approval(db_url)
    impostor = signing.generate(second.origin)
    with unprotect(db_url) as conn:
        conn.execute(sqlalchemy.text("DELETE FROM ledger_keys"))
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO ledger_keys (key_id, verifier_key, created_at) "
                "VALUES (:k, :v, CURRENT_TIMESTAMP)"
            ),
            {"k": impostor.key_id, "v": impostor.public_key},
        )
        conn.commit()
    add(db_url, "message.composed")
    with db.session_scope(db_url) as session:
        forged = checkpoints.sign_checkpoint(session, impostor)
    assert forged is not None
    with db.read_scope(db_url) as session:
        assert verification.verify_records(session).ok  # the database's own keys: fooled
    code, view = verify(run)
    assert code == 1 and view["bad_seq"] == forged.size
    assert "does not verify: the note is not signed by a known key" in view["problem"]


def test_a_deleted_checkpoint_is_caught(run, signed, db_url):
    _, second = signed
    with unprotect(db_url) as conn:
        seq = conn.execute(
            sqlalchemy.text("SELECT ledger_seq FROM ledger_checkpoints WHERE tree_size = :s"),
            {"s": second.size},
        ).scalar_one()
        conn.execute(
            sqlalchemy.text("DELETE FROM ledger_checkpoints WHERE tree_size = :s"),
            {"s": second.size},
        )
        conn.commit()
    code, view = verify(run)
    assert code == 1 and view["bad_seq"] == seq == second.size + 1
    assert f"the checkpoint that ledger entry {seq} records is missing" in view["problem"]


def test_a_rewritten_tree_node_is_caught(run, signed, db_url):
    with unprotect(db_url) as conn:
        conn.execute(
            sqlalchemy.text("UPDATE ledger_tree_nodes SET hash = :h WHERE level = 4 AND idx = 1"),
            {"h": b"\x00" * 32},
        )
        conn.commit()
    code, view = verify(run)
    assert code == 1 and view["bad_seq"] == 17
    assert "stored tree node for entries 17..32 does not match" in view["problem"]


def cut(conn, keep: int) -> None:
    """Remove every entry after `keep` and make the head and the tree end there, as the
    application would have left them at `keep` entries."""
    hashes = conn.execute(
        sqlalchemy.text(f"SELECT entry_hash FROM ledger_entries WHERE seq <= {keep} ORDER BY seq")
    ).scalars()
    leaves = [bytes.fromhex(h) for h in hashes]
    frontier, _ = merkle.append_leaves(0, [], leaves, 99)
    conn.execute(sqlalchemy.text(f"DELETE FROM ledger_payloads WHERE seq > {keep}"))
    conn.execute(sqlalchemy.text(f"DELETE FROM ledger_entries WHERE seq > {keep}"))
    conn.execute(
        sqlalchemy.text("DELETE FROM ledger_tree_nodes WHERE (idx + 1) * (1 << level) > :k"),
        {"k": keep},
    )
    conn.execute(
        sqlalchemy.text("UPDATE ledger_head SET seq = :s, entry_hash = :h, tree_frontier = :f"),
        {"s": keep, "h": leaves[-1].hex(), "f": b"".join(frontier)},
    )


def test_checkpoints_are_checked_with_the_key_given(run, signed, signed_district):
    _, second = signed
    real = signing.load_signer(signed_district).public_key
    assert run("records", "verify", "--key", real).exit_code == 0
    impostor = signing.generate(second.origin).public_key
    result = run("records", "verify", "--json", "--key", impostor)
    view = json.loads(result.stdout)
    assert result.exit_code == 1 and view["bad_seq"] == second.size
    assert f"the newest checkpoint ({second.size} entries) does not verify" in view["problem"]
    bad = run("records", "verify", "--key", "not-a-key")
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --key: not a verifier key (expected NAME+HASH+BASE64KEY)"
    ]


def test_the_signed_note_counts_not_the_rows_copy_of_it(run, signed, db_url):
    """A checkpoint row whose size and root columns were edited: the signed note in it still
    says what was signed, and the ledger still matches that."""
    _, second = signed
    with unprotect(db_url) as conn:
        conn.execute(
            sqlalchemy.text(
                "UPDATE ledger_checkpoints SET tree_size = tree_size + 100, root_hash = 'zz' "
                "WHERE tree_size = :s"
            ),
            {"s": second.size},
        )
        conn.commit()
    code, view = verify(run)
    assert code == 0, view
    assert view["checkpoint"]["size"] == second.size
