"""Who was not reached (issue 13, item 6): per family, reached or not, by which channel and when,
what was tried, over whatever delivery rows a message has now; masked unless a records officer
asks; on the CLI, the API, the console and in the records export."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select, update

from broadcaster.core.db import session_scope
from broadcaster.core.models import Delivery, LedgerEntry, LedgerPayload
from broadcaster.delivery import expansion
from tests.conftest import submit_and_approve

HEADER = "household,phone,landline,email,language,schools,routes,grades,channels,opted_out\n"
FAMILIES = [
    "H-1,951-555-0101,951-555-0111,,en,lincoln-hs,12,10,,no",  # text delivered
    "H-2,951-555-0102,,,en,lincoln-hs,12,10,,no",  # text failed, call expired
    "H-3,,951-555-0113,,en,lincoln-hs,12,10,,no",  # a call sent, no report yet
    "H-4,,,li@example.org,en,lincoln-hs,12,10,,no",  # an e-mail the server accepted
    "H-5,951-555-0105,,,es,lincoln-hs,12,10,,no",  # text failed, call answered
    "H-6,951-555-0106,,fa@example.org,en,lincoln-hs,12,10,,no",  # everything failed
    "H-7,951-555-0107,,,en,lincoln-hs,12,10,,no",  # still queued: live
]
T0 = dt.datetime(2026, 3, 3, 13, 0, tzinfo=dt.UTC)
NOT_VALID = "The 'To' number +19515550102 is not a valid phone number."
REJECTED = "550 5.1.1 <fa@example.org>: Recipient address rejected"
# (channel, recipient) -> (status, error, minutes after T0)
OUTCOMES = {
    ("sms", "+19515550101"): ("delivered", None, 2),
    ("voice", "+19515550101"): ("delivered", None, 5),
    ("voice", "+19515550111"): ("failed", "busy", 3),
    ("sms", "+19515550102"): ("failed", NOT_VALID, 1),
    ("voice", "+19515550102"): ("expired", "not sent: the message was no longer valid", 4),
    ("voice", "+19515550113"): ("sent", None, 1),
    ("email", "li@example.org"): ("sent", None, 1),
    ("sms", "+19515550105"): ("failed", "30003 unreachable", 1),
    ("voice", "+19515550105"): ("delivered", None, 6),
    ("sms", "+19515550106"): ("failed", "30005 unknown destination +19515550106", 1),
    ("voice", "+19515550106"): ("failed", "no-answer", 2),
    ("email", "fa@example.org"): ("failed", REJECTED, 7),
    # ("sms", "+19515550107") and ("voice", "+19515550107") stay queued.
}


@pytest.fixture
def closure(run, tokens, compose_closure, district, tmp_path, db_url) -> int:
    """A closure texted, called and e-mailed to FAMILIES, its rows written and set to OUTCOMES."""
    admin = run.json("users", "add", "it")["token"]
    path = tmp_path / "families.csv"
    path.write_text(HEADER + "\n".join(FAMILIES) + "\n", encoding="utf-8")
    run.json("contacts", "import", str(path), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms,voice,email,web")
    submit_and_approve(run, tokens, draft)
    assert expansion.expand(run.settings(), district, [draft["id"]]) == []
    with session_scope(db_url) as session:
        for (channel, recipient), (status, error, minutes) in OUTCOMES.items():
            at = T0 + dt.timedelta(minutes=minutes)
            changed = session.execute(
                update(Delivery)
                .where(
                    Delivery.message_id == draft["id"],
                    Delivery.channel == channel,
                    Delivery.recipient == recipient,
                )
                .values(status=status, error=error, updated_at=at, sent_at=at - dt.timedelta(1))
            )
            assert changed.rowcount == 1, (channel, recipient)  # type: ignore[attr-defined]
    return int(draft["id"])


def by_household(view: dict) -> dict[str, dict]:
    return {f["household"]: f for f in view["households"]}


def test_each_family_reached_pending_or_not_with_what_was_tried(run, tokens, closure):
    view = run.json("reach", str(closure), "--as", "ana", token=tokens["ana"])
    assert (view["families"], view["reached"], view["pending"], view["not_reached"]) == (7, 3, 2, 2)
    assert view["by_channel"] == {"sms": 1, "voice": 2, "email": 1}  # H-1 by text and by call
    assert view["message"] == closure and view["expanding"] is False
    families = by_household(view)
    assert {h: f["status"] for h, f in families.items()} == {
        "H-1": "reached",
        "H-2": "not_reached",
        "H-3": "pending",  # a call sent and not reported yet
        "H-4": "reached",  # an e-mail the server accepted
        "H-5": "reached",
        "H-6": "not_reached",
        "H-7": "pending",  # still queued
    }
    # The first delivery that reached the family: H-1's text at +2 min, before its call at +5.
    assert families["H-1"]["channel"] == "sms"
    assert families["H-1"]["reached_at"].startswith("2026-03-03T13:02:00")
    assert (families["H-5"]["channel"], families["H-5"]["reached_at"][11:16]) == ("voice", "13:06")
    # An e-mail reached the family when the server accepted it (sent_at).
    assert families["H-4"]["channel"] == "email"
    assert families["H-4"]["reached_at"].startswith("2026-03-02T13:01:00")
    assert families["H-3"]["channel"] is None and families["H-3"]["reached_at"] is None

    unreached = {u["household"]: u for u in view["unreached"]}
    assert set(unreached) == {"H-2", "H-6"}
    h2 = unreached["H-2"]
    assert [(t["channel"], t["recipient"], t["status"]) for t in h2["tried"]] == [
        ("sms", "+1••••••0102", "failed"),
        ("voice", "+1••••••0102", "expired"),
    ]
    assert h2["last_error"] == "not sent: the message was no longer valid"  # the later one
    h6 = unreached["H-6"]
    assert sorted((t["channel"], t["status"]) for t in h6["tried"]) == [
        ("email", "failed"),
        ("sms", "failed"),
        ("voice", "failed"),
    ]
    assert h6["last_error"] == "550 5.1.1 <f•••@example.org>: Recipient address rejected"
    assert [t["error"] for t in h2["tried"]][
        0
    ] == "The 'To' number +1••••••0102 is not a valid phone number."
    text = json.dumps(view, ensure_ascii=False)
    for secret in ("+1951555", "fa@example.org", "li@example.org"):
        assert secret not in text  # masked by default, errors too


def test_the_human_output_and_the_csv(run, tokens, closure, tmp_path):
    out = tmp_path / "reach.csv"
    result = run("reach", str(closure), "--as", "ana", "--csv", str(out), token=tokens["ana"])
    assert result.exit_code == 0, result.output
    assert "7 families: 3 reached, 2 pending, 2 not reached" in result.stdout
    assert "reached by channel: sms 1, voice 2, email 1" in result.stdout
    assert "H-2: sms +1••••••0102 failed; voice +1••••••0102 expired" in result.stdout
    assert "last error: 550 5.1.1 <f•••@example.org>" in result.stdout
    assert "H-1" not in result.stdout  # only the families not reached are listed
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["household", "status", "channel", "reached_at", "tried", "last_error"]
    assert [(r["household"], r["status"], r["channel"]) for r in rows] == [
        ("H-1", "reached", "sms"),
        ("H-2", "not_reached", ""),
        ("H-3", "pending", ""),
        ("H-4", "reached", "email"),
        ("H-5", "reached", "voice"),
        ("H-6", "not_reached", ""),
        ("H-7", "pending", ""),
    ]
    assert rows[6]["tried"] == "sms +1••••••0107 queued; voice +1••••••0107 queued"
    assert "+1951" not in out.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".reach")] == []

    # Nothing is overwritten; a folder that does not exist is bad input.
    again = run("reach", str(closure), "--as", "ana", "--csv", str(out), token=tokens["ana"])
    assert again.exit_code == 2 and "exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    missing = tmp_path / "nowhere" / "reach.csv"
    lost = run("reach", str(closure), "--as", "ana", "--csv", str(missing), token=tokens["ana"])
    assert lost.exit_code == 2 and "does not exist" in lost.stderr
    assert not missing.parent.exists()


def viewed(db_url: str, message_id: int) -> list[tuple[str | None, dict]]:
    """Who saw the message's families unmasked, from the ledger."""
    with session_scope(db_url) as session:
        entries = session.execute(
            select(LedgerEntry.actor, LedgerPayload.body)
            .join(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
            .where(
                LedgerEntry.message_id == message_id,
                LedgerEntry.event == "records.recipients_viewed",
            )
        ).all()
        return [(actor, json.loads(body)) for actor, body in entries]


def test_unmasked_only_for_a_records_officer(run, tokens, closure, db_url):
    refused = run("reach", str(closure), "--as", "ben", "--unmasked", token=tokens["ben"])
    assert refused.exit_code == 2
    assert "may not include recipients" in refused.stderr and "records_officer" in refused.stderr
    assert refused.stdout == ""
    view = run.json("reach", str(closure), "--as", "dev", "--unmasked", token=tokens["dev"])
    assert view["unmasked"] is True
    h6 = {u["household"]: u for u in view["unreached"]}["H-6"]
    assert ("email", "fa@example.org") in [(t["channel"], t["recipient"]) for t in h6["tried"]]
    assert h6["last_error"] == REJECTED
    wrong_token = run("reach", str(closure), "--as", "dev", "--unmasked", token=tokens["ben"])
    assert wrong_token.exit_code == 2
    # Only the records officer's unmasked view is on the record, naming no recipient.
    assert viewed(db_url, closure) == [("dev", {"view": "reach", "message": closure})]


def test_bad_input_is_one_line_and_exit_2(run, tokens, compose_closure):
    missing = run("reach", "999", "--as", "ana", token=tokens["ana"])
    assert missing.exit_code == 2 and "no message 999" in missing.stderr
    posts_only = compose_closure("--channels", "x,web", audience=None)
    submit_and_approve(run, tokens, posts_only)
    nobody = run("reach", str(posts_only["id"]), "--as", "ana", token=tokens["ana"])
    assert nobody.exit_code == 2 and "sends no texts, calls or e-mails" in nobody.stderr
    draft = compose_closure("--channels", "sms")
    unsent = run("reach", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    assert unsent.exit_code == 2 and "has not gone out" in unsent.stderr
    for result in (missing, nobody, unsent):
        assert len(result.stderr.strip().splitlines()) == 1


def test_live_while_the_expansion_still_writes_rows(
    run, tokens, compose_closure, district, tmp_path, db_url
):
    admin = run.json("users", "add", "it")["token"]
    path = tmp_path / "families.csv"
    path.write_text(HEADER + "\n".join(FAMILIES) + "\n", encoding="utf-8")
    run.json("contacts", "import", str(path), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    settings = run.settings()
    with session_scope(db_url, settings=settings) as session:
        assert expansion.expand_page(session, district, draft["id"], 2) is True
    live = run.json("reach", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    assert live["expanding"] is True and live["state"] == "dispatching"
    assert (live["families"], live["pending"], live["reached"]) == (2, 2, 0)
    text = run("reach", str(draft["id"]), "--as", "ana", token=tokens["ana"]).stdout
    assert "still being written" in text
    assert expansion.expand(run.settings(), district, [draft["id"]]) == []
    with session_scope(db_url) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.message_id == draft["id"], Delivery.recipient == "+19515550101")
            .values(status="delivered")
        )
        texts = session.scalar(
            select(Delivery.id).where(Delivery.message_id == draft["id"]).limit(1)
        )
    assert texts is not None
    done = run.json("reach", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    assert done["expanding"] is False
    assert (done["families"], done["reached"], done["pending"]) == (5, 1, 4)
    assert done["by_channel"] == {"sms": 1, "voice": 0, "email": 0}


def test_a_rehearsal_without_households_is_keyed_by_masked_recipient(run, tokens, compose_closure):
    draft = compose_closure("--channels", "sms", "--kind", "test", audience=None)
    submit_and_approve(run, tokens, draft)
    view = run.json("reach", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    assert view["families"] == 1 and view["pending"] == 1
    assert view["households"][0]["household"] == "+1••••••0199"  # the staff allowlist's phone


def _csv_of(folder: Path, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader((folder / name).open(encoding="utf-8")))


def test_the_records_export_includes_the_reach_masked_unless_recipients_are(
    run, tokens, closure, tmp_path
):
    out = tmp_path / "export"
    args = ("records", "export", "--message", str(closure), "--as", "dev")
    assert run(*args, "--out", str(out), token=tokens["dev"]).exit_code == 0
    rows = _csv_of(out, "reach.csv")
    assert [(r["message_id"], r["household"], r["status"], r["channel"]) for r in rows] == [
        (str(closure), "H-1", "reached", "sms"),
        (str(closure), "H-2", "not_reached", ""),
        (str(closure), "H-3", "pending", ""),
        (str(closure), "H-4", "reached", "email"),
        (str(closure), "H-5", "reached", "voice"),
        (str(closure), "H-6", "not_reached", ""),
        (str(closure), "H-7", "pending", ""),
    ]
    h6 = [json.loads(line) for line in (out / "reach.jsonl").read_text().splitlines()][5]
    assert h6["last_error"] == "550 5.1.1 <f•••@example.org>: Recipient address rejected"
    assert {t["recipient"] for t in h6["tried"]} == {"+1••••••0106", "f•••@example.org"}
    text = (out / "reach.csv").read_text(encoding="utf-8") + (out / "reach.jsonl").read_text()
    assert "fa@example.org" not in text and "+19515550106" not in text
    assert "reach " in (out / "README.txt").read_text()
    assert run("records", "verify-export", str(out)).exit_code == 0

    full = tmp_path / "full"
    kept = run(*args, "--out", str(full), "--include-recipients", token=tokens["dev"])
    assert kept.exit_code == 0, kept.output
    h6 = [json.loads(line) for line in (full / "reach.jsonl").read_text().splitlines()][5]
    assert h6["last_error"] == REJECTED
    assert {t["recipient"] for t in h6["tried"]} == {"+19515550106", "fa@example.org"}


def test_the_api_reports_the_same_masked_and_filters_by_status(serve, tokens, closure):
    api = serve()
    path = f"/messages/{closure}/reach"
    view = api("GET", path, tokens["ana"]).json()
    cli_view = {k: view[k] for k in ("families", "reached", "pending", "not_reached")}
    assert cli_view == {"families": 7, "reached": 3, "pending": 2, "not_reached": 2}
    assert view["by_channel"] == {"sms": 1, "voice": 2, "email": 1}
    assert "+1951" not in json.dumps(view) and "fa@example.org" not in json.dumps(view)

    unreached = api("GET", path + "?status=not_reached", tokens["ana"]).json()
    assert [f["household"] for f in unreached["households"]] == ["H-2", "H-6"]
    assert unreached["shown"] == "not_reached" and unreached["families"] == 7
    pending = api("GET", path + "?status=pending", tokens["ana"]).json()
    assert [f["household"] for f in pending["households"]] == ["H-3", "H-7"]

    junk = api("GET", path + "?status=<script>", tokens["ana"])
    assert junk.status_code == 400 and "not_reached" in junk.json()["error"]
    assert api("GET", path + "?statuss=pending", tokens["ana"]).status_code == 400
    assert api("GET", path + "?unmasked=yes", tokens["dev"]).status_code == 400

    refused = api("GET", path + "?unmasked=1", tokens["ben"])
    assert refused.status_code == 403 and "include recipients" in refused.json()["error"]
    full = api("GET", path + "?unmasked=1", tokens["dev"]).json()
    assert full["unmasked"] is True and "fa@example.org" in json.dumps(full)

    assert api("GET", path).status_code == 401  # no token
    assert api("GET", path, "bc_notatoken_" + tokens["dev"][-8:]).status_code == 401
    assert api("GET", "/messages/999/reach", tokens["ana"]).status_code == 404


def test_the_console_shows_the_families_with_a_not_reached_filter(console, closure, db_url):
    markup = '<img src=x onerror="alert(1)">'
    with session_scope(db_url) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.message_id == closure, Delivery.household == "H-6")
            .values(household=markup)
        )
    ana = console.signed_in("ana")
    page = ana.get(f"/console/messages/{closure}").get_data(as_text=True)
    assert "7 families: 3 reached, 2 pending, 2 not reached" in page
    assert "Reached by text 1, by call 2, by e-mail 1" in page
    assert page.count('<tr data-status="') == 7
    assert markup not in page and "&lt;img src=x onerror=" in page  # escaped
    family_numbers = {r for _, r in OUTCOMES if r.startswith("+")} | {"+19515550107"}
    assert not [n for n in family_numbers if n in page] and "fa@example.org" not in page
    assert f'href="/console/messages/{closure}?reach=not_reached#reach"' in page

    only = ana.get(f"/console/messages/{closure}?reach=not_reached").get_data(as_text=True)
    assert only.count('<tr data-status="not_reached">') == 2
    assert '<tr data-status="reached">' not in only and '<tr data-status="pending">' not in only
    assert "H-2" in only and "f•••@example.org" in only
    assert f'href="/console/messages/{closure}#reach">all</a>' in only

    junk = ana.get(f"/console/messages/{closure}?reach=%3Cscript%3E")
    assert junk.status_code == 400 and "<script>" not in junk.get_data(as_text=True)
