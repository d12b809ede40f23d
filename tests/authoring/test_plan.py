"""The send-time planner against hand-computed numbers: each language's rendition measured the
way Twilio meters it (GSM-7 or UCS-2 segments), times the phones reading that language, through
the sender's rate, with the token bucket's own arithmetic (a second's worth at once, then the
rate). Also the sender defaults, the deadlines and the warning, and the plan in `preview --json`
and in the approval's ledger entry."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from broadcaster.authoring import plan
from broadcaster.authoring.limits import measure_sms
from broadcaster.core.account_config import Account
from broadcaster.core.config import SAMPLE_CONFIG
from broadcaster.core.models import LedgerEntry, LedgerPayload, Message
from tests.api_client import CLOSURE
from tests.conftest import compose_closure_command
from tests.console_client import body
from tests.delivery_stack import write_contacts
from tests.web.test_console import closure_form, submitted

START = dt.datetime(2026, 3, 3, 13, 0, tzinfo=dt.UTC)  # 05:00 in Riverside (PST)
EN = "Riverside USD: All schools are closed today, March 3, because of a winter storm. Stay safe."
ES = "Riverside USD: Todas las escuelas están cerradas hoy, 3 de marzo, por una tormenta invernal."


def sms(sender: str | None = None, **more) -> Account:
    return Account(name="district-sms", channel="sms", sender=sender, **more)


def test_the_renditions_are_one_gsm7_and_two_ucs2_segments():
    # The hand cases below rest on these: "á" is not in GSM 03.38, so the Spanish text is
    # UCS-2, 67 UTF-16 units a segment once it is over 70.
    assert (measure_sms(EN)["encoding"], measure_sms(EN)["segments"]) == ("GSM-7", 1)
    assert (measure_sms(ES)["encoding"], measure_sms(ES)["segments"]) == ("UCS-2", 2)
    assert measure_sms(ES)["ucs2_chars"] == ["á"]


RENDITIONS = {("sms", "en"): 1, ("sms", "es"): 2}  # what measure_sms says of EN and ES
AUDIENCE = {"sms": {"en": 1200, "es": 800}}  # 1,200 + 2 × 800 = 2,800 segments


@pytest.mark.parametrize(
    ("account", "rate", "seconds"),
    [
        # A short code: 100 segments at once, then 2,700 at 100 a second.
        (sms("short_code"), 100.0, 27.0),
        # A toll-free number: 3 at once, then 2,797 at 3 a second = 932.33 s.
        (sms("toll_free"), 3.0, 932.3),
        # 10DLC with a Trust Score of 60: 120 a second: (2,800 - 120) / 120 = 22.33 s.
        (sms("10dlc", trust_score=60), 120.0, 22.3),
        # An agreed High-Throughput toll-free rate overrides the default: (2,800 - 25) / 25.
        (sms("toll_free", rate_per_second=25.0), 25.0, 111.0),
    ],
)
def test_two_languages_through_each_sender(account, rate, seconds):
    planned = plan.make_plan([account], RENDITIONS, AUDIENCE, START)
    assert planned == {
        "sms": plan.ChannelPlan(
            account="district-sms",
            recipients=2000,
            segments=2800,
            rate_per_s=rate,
            seconds=seconds,
            last_accepted_at=START + dt.timedelta(seconds=seconds),
        )
    }


def test_the_sender_defaults_are_twilios():
    assert sms("short_code").rate == 100.0
    assert sms("toll_free").rate == 3.0
    assert sms("alphanumeric").rate == 10.0
    tiers = {score: sms("10dlc", trust_score=score).rate for score in (100, 75, 74, 50, 49, 1, 0)}
    assert tiers == {100: 225.0, 75: 225.0, 74: 120.0, 50: 120.0, 49: 12.0, 1: 12.0, 0: 12.0}
    assert sms().rate == 10.0  # neither a sender nor a rate: as before senders existed
    assert sms("short_code", rate_per_second=30.0).rate == 30.0


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"channel": "x", "sender": "short_code"}, "only an sms account has a sender"),
        ({"channel": "sms", "sender": "toll_free", "trust_score": 80}, "trust_score is for"),
        ({"channel": "sms", "sender": "10dlc"}, "needs trust_score"),
        ({"channel": "sms", "sender": "long_code"}, "short_code"),
    ],
)
def test_a_sender_that_cannot_be_planned_is_refused(fields, says):
    with pytest.raises(ValidationError, match=says):
        Account(name="a", **fields)


def test_a_phone_whose_language_has_no_rendition_reads_english():
    planned = plan.make_plan([sms("short_code")], RENDITIONS, {"sms": {"fr": 10, "es": 1}}, START)
    assert (planned["sms"].recipients, planned["sms"].segments) == (11, 12)


def test_posts_one_each_from_the_accounts_that_post_the_messages_languages():
    accounts = [
        Account(name="web", channel="web"),
        Account(name="x-en", channel="x"),
        Account(name="x-es", channel="x", locale="es"),
        Account(name="fb", channel="facebook"),
        sms("toll_free"),
    ]
    english_only = {("x", "en"): 1, ("facebook", "en"): 1, ("web", "en"): 1, ("sms", "en"): 1}
    planned = plan.make_plan(accounts, english_only, {"sms": {"en": 4}}, START)
    assert list(planned) == ["web", "x", "facebook", "sms"]  # the targets' order
    assert (planned["x"].account, planned["x"].recipients) == ("x-en", 1)
    posts = [planned[c] for c in ("web", "x", "facebook")]
    assert all(p.seconds == 0 and p.last_accepted_at == START for p in posts)
    assert planned["sms"].seconds == round((4 - 3) / 3, 1)
    both = {**english_only, ("x", "es"): 1}
    planned = plan.make_plan(accounts, both, {"sms": {"en": 4}}, START)
    assert (planned["x"].account, planned["x"].recipients) == ("x-en, x-es", 2)
    assert plan.make_plan(accounts, both, {}, START).keys() == {"web", "x", "facebook"}


def test_the_deadlines_are_valid_until_and_for_a_closure_the_school_day(district):
    opens = district.district.model_copy(update={"school_day_starts": "07:30"})
    district = district.model_copy(update={"district": opens})
    valid_until = START + dt.timedelta(hours=6)
    closure = Message(category="closure", variables={"date": "2026-03-04"}, valid_until=valid_until)
    school_day = dt.datetime(2026, 3, 4, 15, 30, tzinfo=dt.UTC)  # 07:30 PST
    assert plan.deadlines(district, closure, START) == [
        ("its valid until", valid_until),
        ("the school day starts", school_day),
    ]
    # Without a date, the next school day's start: today's at 05:00, tomorrow's at 08:00.
    undated = Message(category="closure", variables={}, valid_until=None)
    today = dt.datetime(2026, 3, 3, 15, 30, tzinfo=dt.UTC)
    assert plan.deadlines(district, undated, START) == [("the school day starts", today)]
    later = START + dt.timedelta(hours=3)
    assert plan.deadlines(district, undated, later) == [
        ("the school day starts", today + dt.timedelta(days=1))
    ]
    delay = Message(category="delay", variables={}, valid_until=None)
    assert plan.deadlines(district, delay, START) == []


def test_late_names_each_channel_that_misses_a_deadline():
    planned = plan.make_plan(
        [Account(name="web", channel="web"), sms("toll_free")], RENDITIONS, AUDIENCE, START
    )
    school_day = START + dt.timedelta(minutes=10)  # the texts take 932.3 s, 15.5 minutes
    missed = plan.late(planned, [("the school day starts", school_day)])
    assert [(m.channel, m.deadline, m.at) for m in missed] == [
        ("sms", "the school day starts", school_day)
    ]


def test_durations_read_as_people_say_them():
    assert [plan.duration(s) for s in (0, 6.2, 59.9, 250, 3600 + 42 * 60 + 10)] == [
        "0 s",
        "6.2 s",
        "59.9 s",
        "4 min 10 s",
        "1 h 42 min",
    ]


def toll_free_district(tmp_path: Path, school_day_starts: str) -> Path:
    """The sample district with its texts sent from a toll-free number (3 segments a second)
    and a school day that starts at `school_day_starts`."""
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_CONFIG.parent, folder)
    config = folder / SAMPLE_CONFIG.name
    text = config.read_text(encoding="utf-8")
    text = text.replace('sender = "short_code"\nrate_per_second = 100.0', 'sender = "toll_free"')
    text = text.replace("[district]\n", f'[district]\nschool_day_starts = "{school_day_starts}"\n')
    config.write_text(text, encoding="utf-8")
    return config


def test_a_closure_that_cannot_reach_every_family_before_school_warns_with_the_numbers(
    run, tokens, tmp_path, db_url
):
    run.env["BROADCASTER_CONFIG"] = str(toll_free_district(tmp_path, "07:30"))
    admin = run.json("users", "add", "it")["token"]
    expected = write_contacts(tmp_path / "contacts.csv", 300)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    spanish = sum(1 for lang in expected.values() if lang == "es")
    english = len(expected) - spanish

    draft = run.json(*compose_closure_command(), token=tokens["ana"])
    segments = {r["locale"]: r["segments"] for r in draft["renditions"] if r["channel"] == "sms"}
    total = english * segments["en"] + spanish * segments["es"]
    seconds = round((total - 3) / 3, 1)
    texts = draft["plan"]["sms"]
    assert texts == {
        "account": "district-sms",
        "recipients": len(expected),
        "segments": total,
        "rate_per_s": 3.0,
        "seconds": seconds,
        "last_accepted_at": texts["last_accepted_at"],
    }
    last = dt.datetime.fromisoformat(texts["last_accepted_at"])
    assert last.utcoffset() == dt.timedelta(hours=-8)  # the district's offset in winter
    assert abs((last - dt.datetime.now(dt.UTC)).total_seconds() - seconds) < 60
    assert set(draft["plan"]) == {"web", "x", "facebook", "sms"}
    assert draft["plan"]["web"]["seconds"] == 0

    # The closure is for 2026-03-03: its school day started long ago, so every channel is late;
    # the texts' warning carries the numbers.
    late = {f["channel"]: f for f in draft["findings"] if f["check"] == "delivery_time"}
    assert set(late) == {"web", "x", "facebook", "sms"}
    assert late["sms"]["severity"] == "warn"
    detail = late["sms"]["detail"]
    assert f"{len(expected)} phones, {total} SMS segments at 3 a second (district-sms)" in detail
    assert plan.duration(seconds) in detail
    assert "after the school day starts (2026-03-03 07:30 PST)" in detail

    shown = run("preview", str(draft["id"]))
    assert f"Delivery: sms (district-sms): {len(expected)} phones, {total} SMS segments" in (
        shown.stdout
    )

    # The approval (warnings acknowledged) records the plan it saw in the ledger.
    mid = str(draft["id"])
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    refused = run("approve", mid, "--as", "ben", token=tokens["ben"])
    assert refused.exit_code == 2 and "delivery_time" in refused.stderr
    approved = run("approve", mid, "--as", "ben", "--ack-warnings", token=tokens["ben"])
    assert approved.exit_code == 0, approved.output
    from broadcaster.core import db

    with db.session_scope(db_url) as session:
        body = session.scalar(
            select(LedgerPayload.body)
            .join(LedgerEntry, LedgerPayload.seq == LedgerEntry.seq)
            .where(LedgerEntry.event == plan.PLANNED, LedgerEntry.message_id == draft["id"])
        )
    recorded = json.loads(body)
    assert recorded["channels"]["sms"]["segments"] == total
    assert recorded["channels"]["sms"]["rate_per_s"] == 3.0
    assert "plan" not in run.json("show", mid)  # dispatched: the report has it now
    report = run.json("report", mid)
    assert report["channels"]["sms"]["planned"] == recorded["channels"]["sms"]


def test_a_message_that_fits_has_a_plan_and_no_warning(run, tokens, compose_closure):
    draft = compose_closure()  # the sample district: a short code, no school_day_starts
    assert draft["plan"]["sms"]["rate_per_s"] == 100.0
    assert draft["plan"]["sms"]["seconds"] == 0  # a handful of families: within one second
    assert not [f for f in draft["findings"] if f["check"] == "delivery_time"]


def test_compose_preview_and_approval_each_count_the_audience_once(run, tokens, db_url):
    """The check that a message reaches somebody, the recipients shown and the plan share one
    count per command (at a million phones a count is most of an approval's time); the
    incident path composes and approves on one count."""
    from sqlalchemy import event

    from broadcaster.core import db

    counts: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args) -> None:
        if "row_number" in statement.lower():  # contacts.reach: the audience by language
            counts.append(statement)

    engine = db.engine_for(db_url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        steps = {}
        draft = run.json(*compose_closure_command(), token=tokens["ana"])
        steps["compose"], counts[:] = len(counts), []
        mid = str(draft["id"])
        assert run("preview", mid).exit_code == 0
        steps["preview"], counts[:] = len(counts), []
        assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
        counts[:] = []
        assert run("approve", mid, "--as", "ben", token=tokens["ben"]).exit_code == 0
        steps["approve"], counts[:] = len(counts), []
        lockdown = ("--var", "school=lincoln-hs", "--audience", "school:lincoln-hs", "--yes")
        sent = run.json(
            "trigger",
            "lockdown",
            "--as",
            "carmen",
            *lockdown,
            "--no-follow",
            token=tokens["carmen"],
        )
        assert sent["state"] in ("dispatching", "sending")
        steps["trigger"] = len(counts)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert steps == {"compose": 1, "preview": 1, "approve": 1, "trigger": 1}


def test_the_console_shows_the_plan_in_the_live_preview_and_to_the_approver(console):
    ana = console.signed_in("ana")
    ana.get("/console/compose?template=school_closure")
    preview = ana.client.post(
        "/console/compose/preview",
        data=closure_form(ana),
        headers={"Accept": "application/json", "X-CSRFToken": ana.token},
    ).get_json()
    texts = next(line for line in preview["plan"] if line.startswith("sms "))
    # The sample district's four families, a short code: within the first second's burst.
    assert texts.startswith("sms (district-sms): 4 phones, ")
    assert " SMS segments at 100 a second: 0 s, the last accepted at " in texts
    assert any(
        line.startswith("web (district-web): 1 post at 10 a second: 0 s, ")
        for line in preview["plan"]
    )
    message_id = submitted(ana)
    page = body(console.signed_in("ben").get(f"/console/messages/{message_id}"))
    assert 'id="plan"' in page and "sms (district-sms): 4 phones, " in page


def test_the_api_preview_carries_the_documented_plan(serve, tokens):
    api = serve()  # every response is checked against the OpenAPI document, plan included
    view = api("POST", "/preview", tokens["ana"], CLOSURE).json()
    assert set(view["plan"]) == {"web", "x", "facebook", "sms"}
    assert set(view["plan"]["sms"]) == {
        "account",
        "recipients",
        "segments",
        "rate_per_s",
        "seconds",
        "last_accepted_at",
    }
    assert view["plan"]["sms"]["recipients"] == view["recipients"] == 4
