"""Public-records export: a month with a delivered closure, its correction and its retraction
exports, verifies with nothing but the folder, shows no recipient's phone number unless a records
officer asks, and fails verification when any byte of any file changes."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.conftest import submit_and_approve
from tests.delivery_stack import write_contacts

E164 = re.compile(r"\+\d{10,15}")


def this_month() -> tuple[str, str]:
    today = dt.datetime.now(ZoneInfo("America/Los_Angeles")).date()
    first = today.replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return first.isoformat(), last.isoformat()


@pytest.fixture
def month(stack, run, tokens, compose_closure, tmp_path):
    """This month: a bilingual closure delivered to 8 phones on every channel, corrected by an
    update (the closure extended a day), then retracted."""
    admin = run.json("users", "add", "it")["token"]
    phones = write_contacts(tmp_path / "contacts.csv", 8)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    draft = compose_closure()
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    original = draft["id"]
    assert stack.wait_done(original)["state"] == "sent"
    update = run.json(
        "update", str(original), "school_closure", "--as", "ana",
        "--var", "schools=all", "--var", "date=2026-03-04", "--var", "reason=storm damage",
        "--var", "reason.es=daños de la tormenta", token=tokens["ana"],
    )  # fmt: skip
    submit_and_approve(run, tokens, update)
    assert stack.wait_done(update["id"])["state"] == "sent"
    retracted = run.json(
        "retract", str(original), "--as", "ben", "--reason", "sent in error", token=tokens["ben"]
    )
    stack.wait_for(lambda: run.json("status", str(original))["state"] == "retracted", 120)
    stack.wait_done(retracted["notice"])
    return SimpleNamespace(
        original=original,
        update=update["id"],
        notice=retracted["notice"],
        phones=set(phones),
        admin=admin,
    )


def export(run, token: str, out: Path, *extra: str, user: str = "dev"):
    first, last = this_month()
    return run(
        "records", "export", "--as", user, "--from", first, "--to", last, "--out", str(out),
        *extra, token=token,
    )  # fmt: skip


def verify(run, folder: Path):
    result = run("records", "verify-export", str(folder))
    return result.exit_code, (result.stdout + result.stderr).strip()


def rows(folder: Path, table: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{table}.jsonl").read_text().splitlines()]


def test_a_month_exports_verifies_and_shows_no_phone_number(run, tokens, month, tmp_path, district):
    out = tmp_path / "march"
    result = export(run, tokens["dev"], out)
    assert result.exit_code == 0, result.output
    code, said = verify(run, out)
    assert code == 0 and said.startswith("export intact"), said

    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) | {"manifest.json"} == {p.name for p in out.iterdir()}
    assert {
        f"{t}.{x}" for t in ("messages", "deliveries", "ledger") for x in ("csv", "jsonl")
    } <= set(manifest["files"])
    messages = {m["id"]: m for m in rows(out, "messages")}
    assert set(messages) == {month.original, month.update, month.notice}
    assert messages[month.update]["follows_id"] == month.original
    assert messages[month.original]["state"] == "retracted"
    assert messages[month.original]["author"] == "ana"
    assert messages[month.original]["approved_by"] == ["ben"]
    assert messages[month.notice]["follows_id"] == month.original
    deliveries = rows(out, "deliveries")
    assert {d["channel"] for d in deliveries} == {"x", "facebook", "sms", "web"}
    assert all(d["status_history"] for d in deliveries if d["status"] in ("sent", "delivered"))
    assert any(d["message_id"] == month.notice and d["action"] == "delete" for d in deliveries)
    sms = [d for d in deliveries if d["channel"] == "sms"]
    # Each phone: the closure, its update and the retraction's correction text.
    assert len(sms) == 3 * len(month.phones)
    assert all("•" in d["recipient"] for d in sms)
    states = {r["payload_state"] for r in rows(out, "ledger")}
    assert "redacted" in states and "included" in states

    everything = "\n".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    assert not any(phone in everything for phone in month.phones)
    assert set(E164.findall(everything)) <= district.district_phones
    for secret in [*tokens.values(), month.admin, "$argon2"]:
        assert secret not in everything


def test_one_changed_byte_in_any_file_fails_verification(run, tokens, month, tmp_path):
    out = tmp_path / "export"
    assert export(run, tokens["dev"], out).exit_code == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 12  # five tables twice, README.txt, manifest.json
    for name in names:
        copy = tmp_path / f"changed-{name}"
        shutil.copytree(out, copy)
        data = bytearray((copy / name).read_bytes())
        middle = len(data) // 2
        data[middle] = ord("x") if data[middle] != ord("x") else ord("y")
        (copy / name).write_bytes(bytes(data))
        code, said = verify(run, copy)
        assert code == 1 and name in said, (name, said)
    (out / "extra.txt").write_text("added later")
    code, said = verify(run, out)
    assert code == 1 and "extra.txt is not listed" in said
    (out / "extra.txt").unlink()
    (out / "approvals.csv").unlink()
    code, said = verify(run, out)
    assert code == 1 and "approvals.csv is listed in the manifest but missing" in said


def test_recipients_are_only_for_a_records_officer(run, tokens, month, tmp_path):
    refused = export(run, month.admin, tmp_path / "a", "--include-recipients", user="it")
    assert refused.exit_code == 2 and "records_officer" in refused.stderr
    assert not (tmp_path / "a").exists()
    assert export(run, month.admin, tmp_path / "b", user="it").exit_code == 0  # masked: fine
    assert export(run, tokens["ana"], tmp_path / "c", user="ana").exit_code == 2

    out = tmp_path / "full"
    assert export(run, tokens["dev"], out, "--include-recipients").exit_code == 0
    assert verify(run, out)[0] == 0
    sms = {d["recipient"] for d in rows(out, "deliveries") if d["channel"] == "sms"}
    assert sms == month.phones
    assert {r["payload_state"] for r in rows(out, "ledger")} <= {"included", "omitted"}
    assert export(run, tokens["dev"], out).exit_code == 2  # never over an earlier export


def test_an_export_after_a_retention_purge_still_verifies(run, tokens, compose_closure, tmp_path):
    draft = compose_closure("--channels", "x,facebook,web", audience=None)
    submit_and_approve(run, tokens, draft)
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=2 * 366), tick=True):
        purged = run.json("records", "purge", "--as", "dev", token=tokens["dev"])
        assert [d["message"] for d in purged["due"]] == [draft["id"]]
        out = tmp_path / "after"
        result = run(
            "records", "export", "--message", str(draft["id"]), "--out", str(out),
            "--as", "dev", token=tokens["dev"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert verify(run, out)[0] == 0
    ledger = rows(out, "ledger")
    purged_rows = [r for r in ledger if r["payload_state"] == "purged"]
    assert purged_rows and {r["purged_by"] for r in purged_rows} == {purged["destruction_record"]}
    assert ledger[-1]["seq"] == purged["destruction_record"]  # the record travels with them
    message = rows(out, "messages")[0]
    assert message["content_destroyed"] and message["variables"] == {}
