"""Retention under a controlled clock: phone numbers go after the SMS period, content after the
category's years, nothing on a legal hold goes, every purge leaves one destruction record, and the
ledger still verifies afterwards."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select

from broadcaster.core import ledger
from broadcaster.core.config import SAMPLE_CONFIG
from broadcaster.core.models import Delivery, LedgerEntry, LedgerPayload, Rendition
from tests.conftest import submit_and_approve
from tests.delivery_stack import write_contacts

# The clock moves forward from the real now: the delivery workers run on the real clock.
T0 = dt.datetime.now(dt.UTC)


def at(days: int) -> time_machine.travel:
    return time_machine.travel(T0 + dt.timedelta(days=days), tick=True)


def local_day(days: int) -> str:
    return (
        (T0 + dt.timedelta(days=days))
        .astimezone(ZoneInfo("America/Los_Angeles"))
        .date()
        .isoformat()
    )


@pytest.fixture
def records(run, tmp_path):
    """The sample district with a retention section; returns the admin's token."""
    roster = SAMPLE_CONFIG.parent / "roster.csv"
    text = SAMPLE_CONFIG.read_text().replace('roster = "roster.csv"', f'roster = "{roster}"')
    text += "\n[retention]\nyears = 2\nsms_recipient_days = 90\n"
    config = tmp_path / "district.toml"
    config.write_text(text)
    run.env["BROADCASTER_CONFIG"] = str(config)
    admin = run.json("users", "add", "it")["token"]
    write_contacts(tmp_path / "contacts.csv", 6)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    return admin


def closure(run, tokens, compose_closure) -> int:
    draft = compose_closure()
    submit_and_approve(run, tokens, draft)  # deliveries are written at approval
    return draft["id"]


def purge(run, tokens, *extra: str) -> dict:
    return run.json("records", "purge", "--as", "dev", *extra, token=tokens["dev"])


def phones_of(session, message_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Delivery.recipient).where(
                Delivery.message_id == message_id, Delivery.channel == "sms"
            )
        )
    )


def all_payloads(session) -> str:
    return " ".join(b for (b,) in session.execute(select(LedgerPayload.body)) if b)


def last_entry(session) -> tuple[LedgerEntry, dict]:
    entry = session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq.desc())).first()
    body = session.get(LedgerPayload, entry.seq).body
    return entry, json.loads(body)


def test_phone_numbers_then_content_go_on_schedule_and_the_ledger_still_verifies(
    stack, run, tokens, records, compose_closure, session_factory
):
    """A closure really delivered (workers, sandbox), then the clock moves on."""
    mid = closure(run, tokens, compose_closure)
    stack.start_worker()
    assert stack.wait_done(mid)["state"] == "sent"
    with session_factory() as session:
        phones = phones_of(session, mid)
        ledger.append(session, "contact.opted_out", {"phone": phones[0], "word": "STOP"})
        sent_entries = session.scalar(
            select(func.count()).where(LedgerEntry.event == "delivery.sent")
        )
    assert len(phones) == 6 and all(p.startswith("+1415") for p in phones)
    # six texts, two tweets (English and its Spanish reply), one post on Facebook and the web
    assert sent_entries == 10

    with at(30):
        assert purge(run, tokens)["due"] == []
        assert (
            "nothing is past retention"
            in run("records", "purge", "--as", "dev", token=tokens["dev"]).stdout
        )

    with at(100):
        refused = run("records", "purge", "--as", "ana", token=tokens["ana"])
        assert refused.exit_code == 2 and "takes the records_officer role" in refused.stderr
        planned = purge(run, tokens, "--dry-run")
        said = run("records", "purge", "--dry-run", "--as", "dev", token=tokens["dev"]).stdout
        assert "(SMS recipients: 90 days after the communication;" in said
        assert "6 ledger payloads, 6 phone numbers" in said
        assert "would destroy the phone numbers in 1 opt-out entry" in said
        assert [(d["message"], d["scope"]) for d in planned["due"]] == [(mid, "recipients")]
        assert planned["destruction_record"] is None
        with session_factory() as session:
            assert phones_of(session, mid) == phones  # a dry run changes nothing
        done = purge(run, tokens)

    with session_factory() as session:
        remaining = phones_of(session, mid)
        payloads = all_payloads(session)
        texts = list(session.scalars(select(Rendition.text).where(Rendition.message_id == mid)))
        record, body = last_entry(session)
    assert not set(remaining) & set(phones) and len(set(remaining)) == 6
    assert not any(phone in payloads for phone in phones)  # deliveries and the opt-out entry
    assert any("Lincoln" in t for t in texts)  # the content is kept for its two years
    assert record.seq == done["destruction_record"] and record.event == "records.purged"
    assert record.actor == "dev" and body["by"] == "dev"
    assert "SMS recipients: 90 days" in body["rule"] and "opt-outs" in body["rule"]
    # the six delivery.sent entries that name a phone, and the opt-out entry
    assert body["messages"][0]["phone_numbers"] == 6 and len(body["entries"]) == 7
    assert run("records", "verify").exit_code == 0

    with at(2 * 366):  # two calendar years and a day or so
        done = purge(run, tokens)
        assert [(d["message"], d["scope"]) for d in done["due"]] == [(mid, "content")]
        again = purge(run, tokens)
    assert again["due"] == [] and again["destruction_record"] is None  # nothing twice
    with session_factory() as session:
        texts = list(session.scalars(select(Rendition.text).where(Rendition.message_id == mid)))
        kept = session.execute(
            select(LedgerEntry.seq, LedgerPayload.body)
            .join(LedgerPayload, LedgerPayload.seq == LedgerEntry.seq)
            .where(LedgerEntry.message_id == mid)
        ).all()
    assert texts and all(t.startswith("[destroyed under the retention schedule") for t in texts)
    assert kept and all(b is None for _, b in kept)  # every payload gone, every link kept
    verified = run("records", "verify")
    assert verified.exit_code == 0, verified.output


def test_holds_keep_what_they_cover_until_released(
    run, tokens, records, compose_closure, session_factory
):
    with at(0):
        held = closure(run, tokens, compose_closure)
        free = closure(run, tokens, compose_closure)
    with at(10):
        in_range = closure(run, tokens, compose_closure)
        refused = run(
            "records",
            "hold",
            "--message",
            str(held),
            "--reason",
            "x",
            "--as",
            "ben",
            token=tokens["ben"],
        )
        assert refused.exit_code == 2
        one = run.json(
            "records",
            "hold",
            "--message",
            str(held),
            "--reason",
            "public records request 26-114",
            "--as",
            "dev",
            token=tokens["dev"],
        )
        span = run.json(
            "records",
            "hold",
            "--from",
            local_day(9),
            "--to",
            local_day(11),
            "--reason",
            "litigation hold",
            "--as",
            "dev",
            token=tokens["dev"],
        )
    assert span["from"] == local_day(9) and span["to"] == local_day(11)
    assert [h["hold"] for h in run.json("records", "holds")] == [one["hold"], span["hold"]]

    with at(2 * 365 + 30):
        done = purge(run, tokens)
        assert [d["message"] for d in done["due"]] == [free]
        assert {h["message"]: h["holds"] for h in done["held"]} == {
            held: [one["hold"]],
            in_range: [span["hold"]],
        }
        with session_factory() as session:
            texts = dict(session.execute(select(Rendition.message_id, Rendition.text)).all())
        assert "Lincoln" in texts[held] and "Lincoln" in texts[in_range]
        assert texts[free].startswith("[destroyed")
        assert run("records", "verify").exit_code == 0

        released = run("records", "release", str(one["hold"]), "--as", "dev", token=tokens["dev"])
        assert released.exit_code == 0, released.output
        done = purge(run, tokens)
        assert [d["message"] for d in done["due"]] == [held]
        assert [h["message"] for h in done["held"]] == [in_range]

    listed = run.json("records", "holds", "--all")
    assert listed[0]["released_by"] == "dev" and listed[1]["released_by"] is None
    assert [h["hold"] for h in run.json("records", "holds")] == [span["hold"]]
    with session_factory() as session:
        events = list(session.scalars(select(LedgerEntry.event).order_by(LedgerEntry.seq)))
    assert events.count("records.hold_placed") == 2 and events.count("records.hold_released") == 1
    assert events.count("records.purged") == 2
    assert run("records", "verify").exit_code == 0


def test_a_refused_hold_names_the_command_lines_options(run, tokens):
    """The service words what is missing; the command line adds its option (the console its
    field: tests/web/test_console_records.py)."""

    def said(*args: str) -> str:
        result = run(*args, "--as", "dev", token=tokens["dev"])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
        return result.stderr.strip()

    hold = ("records", "hold", "--reason", "litigation")
    assert said(*hold, "--from", "2026-03-01") == (
        "error: a hold on a range of days needs its last day; add --to YYYY-MM-DD"
    )
    assert said(*hold, "--from", "2026-03-31", "--to", "2026-03-01") == (
        "error: the last day (2026-03-01) is before the first (2026-03-31)"
    )
    assert said("records", "hold", "--message", "1", "--reason", " ") == (
        "error: say why the records are held; add --reason TEXT"
    )
    assert said("records", "release", "99") == (
        "error: no hold 99; `broadcaster records holds` lists them"
    )
