"""Post first, then expand, end to end (issue 12, item 1, done when): real workers on real Redis,
the real SDKs against the sandbox. A closure to 20,000 phones on all four channels: its web alert
and posts are sent before its texts are all written, and a worker killed between two pages of the
expansion loses nobody and texts nobody twice once the sweep has resumed it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from broadcaster.core.config import SAMPLE_CONFIG, SAMPLE_DISTRICT
from broadcaster.core.models import Delivery, LedgerEntry, Message
from tests.conftest import submit_and_approve
from tests.delivery_stack import import_contacts, texts_by_phone

POSTS = ("web", "x", "facebook")


def fast_texting_district(tmp_path) -> str:
    """The sample district with its SMS account at 1,000 texts a second (as the benchmark)."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    assert "rate_per_second = 100.0" in text and 'roster = "roster.csv"' in text
    config = tmp_path / "district.toml"
    config.write_text(
        text.replace("rate_per_second = 100.0", "rate_per_second = 1000.0").replace(
            'roster = "roster.csv"', f'roster = "{SAMPLE_DISTRICT / "roster.csv"}"'
        ),
        encoding="utf-8",
    )
    return str(config)


# On PostgreSQL, the production database: the expansion's page logic runs on both in
# test_expansion.py, and 20,000 texts on SQLite too would add two minutes to the suite.
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_posts_go_out_before_20000_texts_are_written_and_a_crash_mid_expansion_loses_nobody(
    stack, run, tokens, compose_closure, tmp_path, session_factory
):
    run.env["BROADCASTER_CONFIG"] = fast_texting_district(tmp_path)
    expected = import_contacts(run, tmp_path, 23_200)  # siblings share phones, some opted out
    assert len(expected) >= 20_000
    draft = compose_closure()
    message_id = draft["id"]
    submit_and_approve(run, tokens, draft)
    worker = stack.start_worker(concurrency=16)

    def posts_out_and_texts_partly_written() -> bool:
        with session_factory() as session:
            message = session.get_one(Message, message_id)
            posts = session.scalars(
                select(Delivery.status).where(
                    Delivery.message_id == message_id, Delivery.channel.in_(POSTS)
                )
            ).all()
            return bool(message.expanded_through) and set(posts) == {"sent"}

    stack.wait_for(posts_out_and_texts_partly_written, timeout=90)
    # Hold the expansion between two pages (the message's row lock; on SQLite the write lock)
    # and kill its worker there, as when a host dies.
    with session_factory() as session:
        message = session.scalars(
            select(Message).where(Message.id == message_id).with_for_update()
        ).one()
        written = session.scalar(
            select(func.count()).where(Delivery.message_id == message_id, Delivery.channel == "sms")
        )
        assert message.expanding and 0 < written < len(expected), written
        posts = session.execute(
            select(Delivery.channel, Delivery.status).where(
                Delivery.message_id == message_id, Delivery.channel.in_(POSTS)
            )
        ).all()
        # X: the English tweet and its Spanish reply.
        assert sorted(posts) == sorted([*((channel, "sent") for channel in POSTS), ("x", "sent")])
        stack.kill(worker)

    # The new workers' sweep finds the expansion stalled and resumes it from its committed
    # cursor (two workers: a process each for the machine's two cores).
    stack.start_worker(concurrency=16)
    stack.start_worker(concurrency=16)
    view = stack.wait_done(message_id, timeout=240)
    assert view["state"] == "sent", view
    assert view["deliveries"]["sms"]["sent"] == len(expected)
    received = texts_by_phone(stack.sandbox)
    assert set(received) == set(expected)
    assert {phone: len(t) for phone, t in received.items() if len(t) > 1} == {}
    assert len(stack.sandbox.posts("x")) == 2 and len(stack.sandbox.posts("facebook")) == 1

    # The order, from the rows and the ledger: every post was sent before the last page of
    # texts was written, and before the expansion's end was recorded.
    with session_factory() as session:
        posts_sent = session.scalar(
            select(func.max(Delivery.sent_at)).where(
                Delivery.message_id == message_id, Delivery.channel.in_(POSTS)
            )
        )
        last_text_written = session.scalar(
            select(func.max(Delivery.created_at)).where(
                Delivery.message_id == message_id, Delivery.channel == "sms"
            )
        )
        expanded = session.scalars(
            select(LedgerEntry.created_at).where(
                LedgerEntry.message_id == message_id, LedgerEntry.event == "dispatch.expanded"
            )
        ).all()
    assert posts_sent is not None and last_text_written is not None
    assert posts_sent < last_text_written
    assert len(expanded) == 1 and posts_sent < dt.datetime.fromisoformat(expanded[0])
    assert run("records", "verify").exit_code == 0
