"""Signed exports (issue 16, item 5): with a signing key, an export carries a checkpoint covering
its ledger slice, an inclusion proof for every entry and a signed list of its files. The untouched
export verifies (with the district's key, and with a witness that kept its checkpoint); an export
whose approvals were edited and whose manifest was recomputed fails naming the file; so does one
re-signed with another key when the district's key is given, and a slice with a gap."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from broadcaster.core import db
from broadcaster.records import checkpoints, export_signing, signing
from broadcaster.records.export_files import MANIFEST, manifest_bytes
from tests.conftest import Cli, submit_and_approve

ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def export(run, token: str, message_id: int, out: Path) -> None:
    result = run(
        "records", "export", "--message", str(message_id), "--out", str(out), "--as", "dev",
        token=token,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def verify(run, out: Path, *extra: str) -> tuple[int, dict]:
    result = run("records", "verify-export", str(out), "--json", *extra)
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def approved(signed_district, tokens, compose_closure, run) -> int:
    """An approved closure (web and social only: no texts); the district signs its ledger."""
    draft = compose_closure("--channels", "x,facebook,web", audience=None)
    submit_and_approve(run, tokens, draft)
    return draft["id"]


@pytest.fixture
def signed_export(run, tokens, approved, tmp_path) -> Path:
    out = tmp_path / "export"
    export(run, tokens["dev"], approved, out)
    return out


def public_key(district) -> str:
    return signing.load_signer(district).public_key


def reseal(out: Path, name: str, change) -> None:
    """The forger's edit: `change` a file's text, then recompute its digest in the manifest and
    the manifest's own seal."""
    path = out / name
    path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"][name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (out / MANIFEST).write_bytes(manifest_bytes(manifest))


def test_a_signed_export_verifies_with_its_proofs(run, signed_export, signed_district):
    code, view = verify(run, signed_export)
    assert code == 0, view
    ledger_rows = (signed_export / "ledger.jsonl").read_text().splitlines()
    assert view["entries"] == len(ledger_rows) > 10
    proofs = (signed_export / "proofs.jsonl").read_text().splitlines()
    assert [json.loads(p)["seq"] for p in proofs] == [json.loads(r)["seq"] for r in ledger_rows]
    key = public_key(signed_district)
    checkpoint = checkpoints.parse_and_verify(
        (signed_export / "checkpoint.txt").read_text(), [signing.parse_verifier_key(key)]
    )
    assert view["signed_by"] == checkpoint.key_id and view["checkpoint_size"] == checkpoint.size
    last = json.loads(ledger_rows[-1])
    assert checkpoint.size >= last["seq"]
    assert view["notes"] and "keys.txt" in view["notes"][0]  # who the key is: --key says
    code, view = verify(run, signed_export, "--key", key)
    assert code == 0 and view["notes"] == []
    text = run("records", "verify-export", str(signed_export), "--key", key)
    assert text.stdout.splitlines()[1] == (
        f"signed by key {checkpoint.key_id}; every entry's inclusion proof verified against "
        f"the checkpoint of {checkpoint.size} entries"
    )


def test_approvals_edited_and_manifest_recomputed_fail_naming_the_file(run, signed_export):
    reseal(signed_export, "approvals.jsonl", lambda text: text.replace('"ben"', '"carmen"'))
    assert '"carmen"' in (signed_export / "approvals.jsonl").read_text()
    code, view = verify(run, signed_export)
    assert code == 1 and view["bad_file"] == "approvals.jsonl"
    assert (
        "approvals.jsonl was changed: its SHA-256 does not match the file list" in (view["problem"])
    )


def test_an_export_re_signed_with_another_key_fails_with_the_districts_key(
    run, signed_export, signed_district
):
    """The forger signs a new list with a key of their own and puts it in keys.txt: the export
    agrees with itself, but not with the district's key."""
    reseal(signed_export, "approvals.jsonl", lambda text: text.replace('"ben"', '"carmen"'))
    checkpoint = (signed_export / "checkpoint.txt").read_text()
    impostor = signing.generate(checkpoint.split("\n", 1)[0])
    files = {
        p.name: p.read_bytes()
        for p in signed_export.iterdir()
        if p.name not in ("signature.txt", "keys.txt")
    }
    body = checkpoint[: checkpoint.index("\n\n") + 1]
    files["checkpoint.txt"] = signing.sign_note(body, impostor).encode()
    files["keys.txt"] = f"{impostor.public_key}\n".encode()
    for name in ("checkpoint.txt", "keys.txt"):
        (signed_export / name).write_bytes(files[name])
    manifest = json.loads(files[MANIFEST])
    manifest["files"].update(
        {n: hashlib.sha256(files[n]).hexdigest() for n in ("checkpoint.txt", "keys.txt")}
    )
    manifest["signed_by"] = impostor.key_id
    files[MANIFEST] = manifest_bytes(manifest)
    (signed_export / MANIFEST).write_bytes(files[MANIFEST])
    (signed_export / "signature.txt").write_bytes(export_signing.signature(impostor, files))
    assert verify(run, signed_export)[0] == 0  # against its own keys.txt only
    code, view = verify(run, signed_export, "--key", public_key(signed_district))
    assert code == 1 and view["bad_file"] == "signature.txt"
    assert "not signed by a known key" in view["problem"]


def test_a_gap_in_the_ledger_slice_is_an_error(run, tokens, compose_closure, tmp_path):
    """Unsigned (the sample district has no key): the slice is still checked link by link."""
    draft = compose_closure("--channels", "x,facebook,web", audience=None)
    submit_and_approve(run, tokens, draft)
    out = tmp_path / "export"
    export(run, tokens["dev"], draft["id"], out)
    code, view = verify(run, out)
    assert code == 0 and view["signed_by"] is None and "not signed" in view["notes"][0]

    def drop_one(text: str) -> str:
        lines = text.splitlines(keepends=True)
        return "".join(lines[:5] + lines[6:])

    removed = json.loads((out / "ledger.jsonl").read_text().splitlines()[5])["seq"]
    reseal(out, "ledger.jsonl", drop_one)
    code, view = verify(run, out)
    assert code == 1 and view["bad_file"] == "ledger.jsonl"
    assert view["problem"] == (
        f"ledger.jsonl: entry {removed + 1} follows entry {removed - 1}: the entries between "
        "are missing"
    )
    public = signing.generate("x.example/ledger").public_key
    code, view = verify(run, out, "--key", public)
    assert code == 1 and "not signed" in view["problem"]


@ON_SQLITE
def test_a_witness_vouches_for_the_checkpoint_it_kept(
    run, tokens, approved, web_app, tmp_path, signed_district, db_url
):
    site = web_app()
    clerk = Cli({"BROADCASTER_HOME": str(tmp_path / "clerk")})
    store = tmp_path / "clerk" / "witness"
    early = tmp_path / "early"
    export(run, tokens["dev"], approved, early)  # its checkpoint: before the witness looked
    run.json("users", "add", "it")
    with db.session_scope(db_url) as session:  # as every N minutes: the tree grew
        assert checkpoints.sign_checkpoint(session, signing.load_signer(signed_district))
    kept = clerk("records", "witness", site, "--store", str(store), "--json")
    assert kept.exit_code == 0, kept.output
    late = tmp_path / "late"
    export(run, tokens["dev"], approved, late)  # the newest checkpoint covers it: the kept one
    code, view = verify(run, late, "--witness", str(store))
    assert code == 0, view
    code, view = verify(run, early, "--witness", str(store))
    assert code == 1 and view["bad_file"] == "checkpoint.txt"
    assert "never kept this checkpoint" in view["problem"]
