"""The ledger's public routes (issue 16, item 3): the latest checkpoint and the key as text, the
key history, an Atom feed of checkpoints, and consistency proofs that verify; bad query strings
are a 400 with one line, never a 500."""

from __future__ import annotations

import base64

import pytest
import requests
from lxml import etree

from broadcaster.core import db, merkle
from broadcaster.records import checkpoints, signing

ATOM = "{http://www.w3.org/2005/Atom}"
ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def sign(db_url, district):
    with db.session_scope(db_url) as session:
        return checkpoints.sign_checkpoint(session, signing.load_signer(district))


@ON_SQLITE
def test_the_site_publishes_checkpoints_keys_and_proofs(run, signed_district, web_app, db_url):
    site = web_app()
    assert requests.get(f"{site}/ledger/checkpoint", timeout=10).status_code == 404
    run.json("users", "add", "ana")
    old = sign(db_url, signed_district)
    run.json("users", "add", "ben")
    new = sign(db_url, signed_district)
    answer = requests.get(f"{site}/ledger/checkpoint", timeout=10)
    assert answer.headers["Content-Type"].startswith("text/plain") and answer.text == new.note
    key = requests.get(f"{site}/ledger/key", timeout=10).text
    assert checkpoints.parse_and_verify(answer.text, [signing.parse_verifier_key(key)]) == new
    history = requests.get(f"{site}/ledger/key/history", timeout=10).text.splitlines()
    assert len(history) == 1 and key.strip() in history[0]

    proof = requests.get(
        f"{site}/ledger/consistency", params={"from": old.size, "to": new.size}, timeout=10
    ).json()
    hashes = [base64.b64decode(h) for h in proof["proof"]]
    assert merkle.verify_consistency(old.size, new.size, old.root, new.root, hashes)

    feed = etree.fromstring(requests.get(f"{site}/ledger/checkpoints.atom", timeout=10).content)
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}content") for e in entries] == [new.note, old.note]
    assert entries[0].findtext(f"{ATOM}title").startswith(f"Checkpoint: {new.size} entries,")


@ON_SQLITE
def test_bad_query_strings_are_one_line_400s(run, signed_district, web_app, db_url):
    run.json("users", "add", "ana")
    sign(db_url, signed_district)  # a tree of 2
    site = web_app()
    for query, said in (
        ("", "give from=N"),
        ("from=1", "give to=N"),
        ("from=0&to=1", "0 < from <= to <= 3"),
        ("from=2&to=1", "0 < from <= to <= 3"),
        ("from=1&to=4", "0 < from <= to <= 3"),
        ("from=-1&to=2", "from must be a whole number"),
        ("from=1.5&to=2", "from must be a whole number"),
        ("from=%D9%A1&to=2", "from must be a whole number"),  # an Arabic-Indic digit one
        ("from=1&to=" + "9" * 40, "to must be a whole number"),
        ("from=%00&to=2", "from must be a whole number"),
        ("from=1&to=2%E2%80%AE", "to must be a whole number"),
    ):
        answer = requests.get(f"{site}/ledger/consistency?{query}", timeout=10)
        assert answer.status_code == 400, query
        error = answer.json()["error"]
        assert said in error and "\n" not in error, (query, error)
