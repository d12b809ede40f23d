"""The checkpoint signing key (issue 16, items 2 and 6): C2SP signed notes byte for byte as Go's
reference writes them, `records keygen` (owner-only, never overwriting, refused when others may
read the key), `--rotate` (a handover signed by both keys, every public key kept), and notes that
are forged, tampered with or malformed refused with a reason."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat

import pytest

from broadcaster.core import db
from broadcaster.core.errors import BadInput
from broadcaster.records import signing
from broadcaster.records.signing import NoteError
from tests.signed_ledger import KEY_FILE, signed_config

ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

# golang.org/x/mod/sumdb/note's documented example: key, text and the exact signed note.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2p"
    "ZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_notes_and_keys_match_the_reference_implementation():
    signer = signing.parse_signer(GO_SIGNER, "the example key")
    assert signer.public_key == GO_VERIFIER and signer.key_id == "c74f20a3"
    assert signing.sign_note(GO_TEXT, signer) == GO_NOTE
    opened = signing.open_note(GO_NOTE, [signing.parse_verifier_key(GO_VERIFIER)])
    assert opened.text == GO_TEXT and opened.signed_by[0].key_id == "c74f20a3"


def refusal(note: str | bytes, keys: list[signing.VerifierKey]) -> str:
    with pytest.raises(NoteError) as caught:
        signing.open_note(note, keys)
    return str(caught.value)


def test_forged_tampered_and_malformed_notes_are_refused():
    real = [signing.parse_verifier_key(GO_VERIFIER)]
    other = signing.generate("PeterNeumann")
    assert "not signed by a known key" in refusal(signing.sign_note(GO_TEXT, other), real)
    tampered = GO_NOTE.replace("cryptography", "cryptographyy")
    assert "does not verify" in refusal(tampered, real)
    assert "larger than" in refusal(GO_TEXT + "x" * 20_000 + GO_NOTE[len(GO_TEXT) :], real)
    assert "not UTF-8" in refusal(b"\xff\xfe" + GO_NOTE.encode(), real)
    bidi = GO_NOTE.replace("problem,", "problem\u202e,")
    assert "printable ASCII" in refusal(bidi, real)
    assert "no signature block" in refusal(GO_TEXT, real)
    assert "em dash" in refusal(GO_TEXT + "\n- PeterNeumann AAAA\n", real)
    assert "more than" in refusal(GO_TEXT + "\n" + GO_NOTE[len(GO_TEXT) + 1 :] * 20, real)
    # Another party's signature beside ours is ignored, not an error (a witness's cosignature).
    cosigned = GO_NOTE + f"\u2014 witness.example {'A' * 92}\n"
    assert signing.open_note(cosigned, real).text == GO_TEXT
    for bad_key in ("PeterNeumann+c74f20a3", "Peter+00000000+" + GO_VERIFIER.split("+", 2)[2]):
        with pytest.raises(NoteError):
            signing.parse_verifier_key(bad_key)


@ON_SQLITE
def test_keygen_makes_an_owner_only_key_and_never_overwrites_it(run, tmp_path, db_url):
    run.env["BROADCASTER_CONFIG"] = str(signed_config(tmp_path))
    made = run.json("records", "keygen")
    key = tmp_path / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert made["public_key"] == signing.load_signer(key).public_key
    before = key.read_bytes()
    again = run("records", "keygen")
    assert again.exit_code == 2 and "never overwrites" in again.stderr
    assert key.read_bytes() == before
    with db.session_scope(db_url) as session:
        assert list(signing.public_keys(session)) == [made["key_id"]]
    history = signing.read_history(signing.history_path(key))
    assert [r.verifier_key for r in history] == [made["public_key"]]
    # The private half is in the key file only: not in the database, not in the history.
    seed_text = key.read_text().strip().rsplit("+", 1)[1]
    assert seed_text not in signing.history_path(key).read_text()
    dump = "\n".join(sqlite3.connect(db_url.removeprefix("sqlite:///")).iterdump())
    assert made["public_key"] in dump and seed_text not in dump


@ON_SQLITE
def test_a_key_others_may_read_is_refused(run, tmp_path, db_url):
    run.env["BROADCASTER_CONFIG"] = str(signed_config(tmp_path))
    run.json("records", "keygen")
    key = tmp_path / KEY_FILE
    os.chmod(key, 0o640)
    with pytest.raises(BadInput, match=r"may be read by others \(mode 640\): run `chmod 600"):
        signing.load_signer(key)
    doctor = json.loads(run("doctor", "--json").stdout)
    line = next(c for c in doctor["checks"] if c["name"] == "signing key")
    assert not line["ok"] and "chmod 600" in line["detail"]


@ON_SQLITE
def test_without_a_key_nothing_is_signed_and_doctor_says_so(run, tmp_path, db_url):
    result = run("records", "keygen")
    assert result.exit_code == 2 and "[records] signing_key" in result.stderr
    doctor = run("doctor", "--json")
    line = next(c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "signing key")
    assert line["ok"] and "not signed" in line["detail"]


@ON_SQLITE
def test_rotation_hands_over_with_both_keys_and_keeps_every_public_key(run, tmp_path, db_url):
    run.env["BROADCASTER_CONFIG"] = str(signed_config(tmp_path))
    first = run.json("records", "keygen")
    second = run.json("records", "keygen", "--rotate")
    assert second["replaces"] == first["key_id"] != second["key_id"]
    key = tmp_path / KEY_FILE
    assert signing.load_signer(key).key_id == second["key_id"]  # the old private key is gone
    assert not key.with_name(key.name + ".new").exists()
    history = signing.read_history(signing.history_path(key))
    chained = signing.chain_keys(history)
    assert [k.key_id for k in chained] == [first["key_id"], second["key_id"]]
    with db.session_scope(db_url) as session:
        assert list(signing.public_keys(session)) == [first["key_id"], second["key_id"]]
    # A handover signed by the new key alone (an insider's own key) is refused.
    forged = signing.generate(chained[0].name)
    text = signing.handover_text(chained[0], forged.verifier, dt.datetime.now(dt.UTC))
    fake = signing.KeyRecord(forged.key_id, forged.public_key, "", signing.sign_note(text, forged))
    with pytest.raises(NoteError, match="not signed by a known key|not signed by both"):
        signing.chain_keys([history[0], fake])
