"""E-mails end to end: a message with the e-mail channel, composed, approved and sent by real Celery
workers through the e-mail adapter (smtplib, STARTTLS, AUTH) to the sandbox's SMTP server.

The rehearsals here e-mail the test allowlist's addresses (dispatch writes those rows itself);
e-mails to an audience's families come from the contact list's e-mail column, written by the
expansion (the last test)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.core import db
from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT, load_district
from broadcaster.core.errors import Refused
from broadcaster.core.models import Delivery, LedgerEntry
from broadcaster.core.rehearsals import ensure_allowed_recipient
from tests.conftest import submit_and_approve

DRILLS = ["drills@riversideusd.org", "second.drill@riversideusd.org"]
UNSUBSCRIBE = "https://riversideusd.org/unsubscribe?address={recipient}"
MESSAGE_ID = re.compile(r"^<delivery-(\d+)\.message-(\d+)@riversideusd\.org>$")


@pytest.fixture
def email_district(run, tmp_path: Path) -> Path:
    """The sample district with two test addresses on the allowlist, and its test e-mail account
    offering an https List-Unsubscribe (one-click, RFC 8058) besides the mailto one."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace(
        'emails = ["drills@riversideusd.org"]', f"emails = {DRILLS!r}".replace("'", '"'), 1
    ).replace('roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"')
    text = text.replace(
        'name = "test-email"\n',
        'name = "test-email"\n'
        'settings = { from_address = "alerts@riversideusd.org", '
        f'list_unsubscribe = "{UNSUBSCRIBE}" }}\n',
        1,
    )
    config = tmp_path / "district.toml"
    config.write_text(text, encoding="utf-8")
    assert load_district(config).test_emails == tuple(DRILLS)
    run.env["BROADCASTER_CONFIG"] = str(config)
    return config


def compose(run, tokens, template: str, *values: str, kind: str = "test", channels="sms,email"):
    """A rehearsal of `template` (its texts go to the test phone, its e-mails to the test
    addresses), composed by ana and approved by ben."""
    args = ["compose", template, "--as", "ana", "--kind", kind, "--channels", channels]
    for value in values:
        args += ["--var", value]
    draft = run.json(*args, token=tokens["ana"])
    submit_and_approve(run, tokens, draft)
    return draft


CONCERT = (
    "event=the spring concert",
    "school=lincoln-hs",
    "date=2026-05-14",
    "reason=a power outage",
)


def plain(message: dict) -> str:
    """A kept e-mail's text part as written (SMTP carries its lines with CRLF)."""
    return str(message["text"]).replace("\r\n", "\n").strip()


def email_rows(run, message_id: int) -> list[Delivery]:
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        rows = session.scalars(
            select(Delivery)
            .where(Delivery.message_id == message_id, Delivery.channel == "email")
            .order_by(Delivery.id)
        ).all()
        session.expunge_all()
        return list(rows)


def test_a_routine_email_arrives_with_both_parts_unsubscribe_and_its_recorded_message_id(
    email_district, stack, run, tokens
):
    draft = compose(run, tokens, "event_cancellation", *CONCERT)
    rendered = next(r["text"] for r in draft["renditions"] if r["channel"] == "email")
    subject_line, _, body = rendered.partition("\n\n")
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    assert view["deliveries"]["email"]["sent"] == len(DRILLS)

    kept = stack.sandbox.smtp_messages()
    assert sorted(m["rcpt_tos"][0] for m in kept) == sorted(DRILLS)  # each address once
    rows = {r.recipient: r for r in email_rows(run, draft["id"])}
    for message in kept:
        assert message["tls"] and message["auth_user"] == "test-email"
        assert message["subject"] == subject_line.removeprefix("Subject: ")
        assert message["subject"].startswith("[TEST] Riverside USD: Canceled: ")
        # The plain part: the body as rendered, then the Spanish one (the family's language
        # first: these test addresses read English).
        assert plain(message).startswith(body.strip() + "\n\n— En español —\n\n")
        assert "spring concert" in message["html"] and '<p dir="auto">' in message["html"]
        assert message["content_type"] == "multipart/alternative"
        # A routine category (events): List-Unsubscribe, with one-click for the https URI.
        quoted = message["rcpt_tos"][0].replace("@", "%40")
        assert message["list_unsubscribe"] == f"<{UNSUBSCRIBE.format(recipient=quoted)}>"
        assert message["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
        # The Message-ID is made from the delivery, and is the provider id recorded.
        row = rows[message["rcpt_tos"][0]]
        assert MESSAGE_ID.match(message["message_id"]).groups() == (
            str(row.id),
            str(draft["id"]),
        )
        assert row.provider_id == message["message_id"]
    assert run("records", "verify").exit_code == 0


def test_an_emergency_email_never_offers_an_unsubscribe(email_district, stack, run, tokens):
    draft = compose(run, tokens, "lockdown", "school=lincoln-hs")
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "sent"
    kept = stack.sandbox.smtp_messages()
    assert len(kept) == len(DRILLS)
    for message in kept:
        assert message["subject"].startswith("[TEST] Riverside USD: Lockdown: ")
        assert message["list_unsubscribe"] is None and message["list_unsubscribe_post"] is None
        assert "List-Unsubscribe" not in message["header_names"]


def test_a_5xx_fails_the_email_with_the_servers_reply(email_district, stack, run, tokens):
    stack.sandbox.set_faults(
        [
            {
                "provider": "email",
                "fault": "status",
                "status": 554,
                "message": "5.7.1 Message rejected as spam by policy",
            }
        ]
    )
    draft = compose(run, tokens, "event_cancellation", *CONCERT)
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["deliveries"]["email"].get("failed") == len(DRILLS), view
    assert view["deliveries"]["sms"]["sent"] == 1  # the text went
    assert stack.sandbox.smtp_messages() == []
    for row in email_rows(run, draft["id"]):
        assert row.status == "failed" and row.attempts == 1  # never retried
        assert "554 5.7.1 Message rejected as spam by policy" in (row.error or "")


def test_a_4xx_is_retried_and_the_email_goes_once(email_district, stack, run, tokens):
    stack.sandbox.set_faults([{"provider": "email", "fault": "status", "status": 451, "count": 2}])
    draft = compose(run, tokens, "event_cancellation", *CONCERT)
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    kept = stack.sandbox.smtp_messages()
    assert sorted(m["rcpt_tos"][0] for m in kept) == sorted(DRILLS)  # once each
    refused = [r for r in stack.sandbox.requests("email") if r.get("status") == 451]
    assert len(refused) == 2
    rows = email_rows(run, draft["id"])
    assert sum(r.attempts for r in rows) == len(DRILLS) + 2
    with db.session_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        retries = session.scalars(
            select(LedgerEntry.event).where(
                LedgerEntry.message_id == draft["id"], LedgerEntry.event == "delivery.retry"
            )
        ).all()
    assert len(retries) == 2


def test_a_rehearsal_emails_only_the_test_addresses(email_district, stack, run, tokens):
    """An exercise e-mails the allowlisted test addresses and nobody in the contact list; the
    worker's last guard refuses any other address for a rehearsal."""
    draft = compose(run, tokens, "event_cancellation", *CONCERT, kind="exercise")
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "sent"
    kept = stack.sandbox.smtp_messages()
    assert sorted(m["rcpt_tos"][0] for m in kept) == sorted(DRILLS)
    assert all(m["subject"].startswith("[TEST - EXERCISE] ") for m in kept)
    district = load_district(email_district)
    for kind in ("test", "exercise"):
        ensure_allowed_recipient(district, kind, "email", "drills@RIVERSIDEUSD.org")
        with pytest.raises(Refused):
            ensure_allowed_recipient(district, kind, "email", "parent@example.org")
    ensure_allowed_recipient(district, "actual", "email", "parent@example.org")


def test_a_rehearsals_count_is_each_number_and_address_once(email_district, stack, run, tokens):
    """The preview counts a rehearsal's allowlist as the reach report does: each test number
    (texted and called) and each test address its own family."""
    draft = compose(run, tokens, "event_cancellation", *CONCERT, channels="sms,voice,email")
    phones = len(load_district(email_district).test_phones)
    assert draft["recipients"] == phones + len(DRILLS)
    assert draft["reach"]["voice"] == draft["reach"]["sms"] == phones
    assert draft["reach"]["email"] == len(DRILLS)
    view = run.json("reach", str(draft["id"]), "--as", "ana", token=tokens["ana"])
    assert view["families"] == phones + len(DRILLS)


@pytest.mark.parametrize(
    "value",
    [
        "the concert\r\nX-Injected: yes",
        "the concert\nX-Injected: yes",
        "the concert\r\n\r\nSubject: forged",
        "the concert\u2028X-Injected: yes",
        "the concert\x85X-Injected: yes",
    ],
)
def test_a_line_break_in_a_value_cannot_add_a_header(email_district, stack, run, tokens, value):
    """A value with CR/LF (or a Unicode line separator) is refused at compose, or its subject
    is blocked before submission, or, were it let through, it lands in the body: never a second
    header, never a second recipient."""
    args = ["compose", "event_cancellation", "--as", "ana", "--kind", "test"]
    args += ["--channels", "sms,email", "--var", f"event={value}"]
    for other in CONCERT[1:]:
        args += ["--var", other]
    result = run(*args, "--json", token=tokens["ana"])
    if result.exit_code != 0:
        assert result.exit_code == 2, result.output
        return
    draft = json.loads(result.stdout)
    blocked = [f for f in draft["findings"] if f["severity"] == "block"]
    if blocked:
        assert [(f["check"], f["channel"]) for f in blocked] == [("over_limit", "email")] * 2
        assert all("subject" in f["detail"] for f in blocked), blocked
        refused = run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"])
        assert refused.exit_code == 2, refused.output
        return
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    stack.wait_done(draft["id"])
    for message in stack.sandbox.smtp_messages():
        assert message["rcpt_tos"] in ([d] for d in DRILLS)
        assert "X-Injected" not in message["header_names"]
        assert message["header_names"].count("Subject") == 1
        assert "Injected" not in message["subject"] and "forged" not in message["subject"]


def test_a_closure_emails_each_familys_address_once_in_its_language(stack, run, tokens, tmp_path):
    """Families with e-mail addresses (the contact list's `email` column) get the closure by
    e-mail, each address once, in the family's language first and then the others, with both
    parts (the HTML part the web rendition, in the same order)."""
    path = tmp_path / "contacts.csv"
    expected: dict[str, str] = {}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["household", "phone", "email", "language", "schools", "routes", "grades"])
        for i in range(12):
            address = f"family{i}@example.org"
            language = "es" if i % 3 == 0 else "en"
            phone = f"+1415{3000000 + i:07d}"
            writer.writerow([f"h{i}", phone, address, language, "lincoln-hs", "12", "10"])
            expected[address] = language
    admin = run.json("users", "add", "it")["token"]
    run.json("contacts", "import", str(path), "--as", "it", token=admin)
    args = ["compose", "school_closure", "--as", "ana", "--channels", "email,web"]
    args += ["--var", "schools=lincoln-hs", "--var", "date=2026-03-03"]
    args += ["--var", "reason=a winter storm", "--var", "reason.es=una tormenta invernal"]
    draft = run.json(*args, "--audience", "school:lincoln-hs", token=tokens["ana"])
    texts = {r["locale"]: r["text"] for r in draft["renditions"] if r["channel"] == "email"}
    pages = {r["locale"]: r["text"] for r in draft["renditions"] if r["channel"] == "web"}
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    kept = stack.sandbox.smtp_messages()
    assert sorted(m["rcpt_tos"][0] for m in kept) == sorted(expected)
    label = {"en": "— In English —", "es": "— En español —"}
    for message in kept:
        language = expected[message["rcpt_tos"][0]]
        other = "en" if language == "es" else "es"
        subject, _, body = texts[language].partition("\n\n")
        _, _, other_body = texts[other].partition("\n\n")
        assert message["subject"] == subject.removeprefix("Subject: ")
        assert plain(message) == f"{body.strip()}\n\n{label[other]}\n\n{other_body.strip()}"
        html = message["html"].replace("\r\n", "\n")  # SMTP carries lines with CRLF
        first, second = html.index(f'<section lang="{language}">'), html.index(f'lang="{other}"')
        assert first < second
        assert pages[language].strip() in html and pages[other].strip() in html
        assert message["list_unsubscribe"] is None  # a closure is never routine
