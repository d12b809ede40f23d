"""Post first, then expand (issue 12, item 1): the approval writes and releases the posts, and a
worker writes the texts in pages after it, from the contact list the approval saw.

These run the expansion's pages in this process, one at a time, against the real database (both
kinds) and a real broker, so that each test can act between two pages: fail a page's commit,
import a new contact list, opt a number out, settle every row written so far. The end-to-end run
with real workers (20,000 recipients, a worker killed mid-expansion) is test_expansion_e2e.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from broadcaster.core import contacts, db
from broadcaster.core.models import Contact, Delivery, LedgerEntry, Message, OptOut, utcnow
from broadcaster.delivery import dispatch, expansion
from broadcaster.delivery.celery_app import EXPAND, SEND
from broadcaster.delivery.recording import finish_if_done
from tests.conftest import submit_and_approve
from tests.delivery_stack import write_contacts

PAGE = 25


@pytest.fixture
def settings(run):
    return run.settings()


@pytest.fixture
def admin(run) -> str:
    return run.json("users", "add", "it")["token"]


def import_families(run, admin: str, tmp_path, n: int) -> dict[str, str]:
    expected = write_contacts(tmp_path / "contacts.csv", n)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    return expected


@pytest.fixture
def approved(run, tokens, admin, compose_closure, tmp_path):
    """120 contact rows (siblings share a phone, some opted out) and a closure to them and the
    web, approved while no worker runs. Returns (message id, phone -> language)."""
    expected = import_families(run, admin, tmp_path, 120)
    draft = compose_closure("--channels", "sms,web")
    assert draft["recipients"] == len(expected)  # the preview's count, by the database
    submit_and_approve(run, tokens, draft)
    return draft["id"], expected


def page(settings, district, message_id: int) -> tuple[bool, dispatch.Released]:
    """One page, as the expand task writes it: (more to come, what its commit enqueued)."""
    url = settings.effective_database_url
    with db.session_scope(url, settings=settings) as session:
        more = expansion.expand_page(session, district, message_id, PAGE)
    return more, dispatch.released(session)


def texts(session_factory, message_id: int) -> dict[str, str]:
    with session_factory() as session:
        rows = session.execute(
            select(Delivery.recipient, Delivery.locale).where(
                Delivery.message_id == message_id, Delivery.channel == "sms"
            )
        ).all()
    assert len(rows) == len({phone for phone, _ in rows})  # never two rows for one phone
    return dict(rows)


def message(session_factory, message_id: int) -> Message:
    with session_factory() as session:
        found = session.get_one(Message, message_id)
        session.expunge(found)
    return found


def test_the_approval_writes_the_posts_and_each_page_of_texts_is_released_as_it_commits(
    run, settings, district, approved, session_factory
):
    message_id, expected = approved
    with session_factory() as session:
        rows = session.execute(select(Delivery.channel, Delivery.status)).all()
        version = session.scalar(select(func.max(Contact.version)))
    assert rows == [("web", "queued")]  # the post only: no text is written yet
    frozen = message(session_factory, message_id)
    assert frozen.expanding and frozen.contacts_version == version and frozen.expanded_through == 0

    written: list[int] = []
    more = True
    while more:
        more, released = page(settings, district, message_id)
        ids = [i for batch in released.batches for i in batch.ids]
        assert all(batch.task == SEND and len(batch.ids) <= 50 for batch in released.batches)
        assert not set(ids) & set(written)  # each page releases only its own rows
        written += ids
        status = run.json("status", str(message_id))
        assert sum(status["deliveries"]["sms"].values()) == len(written)  # the texts grow
        assert status["texts_being_written"] is more
        if more:
            assert status["state"] == "dispatching"
            assert "still being written" in run("status", str(message_id)).output
    assert texts(session_factory, message_id) == expected  # first row's language, opted out left
    with session_factory() as session:
        assert sorted(written) == sorted(
            session.scalars(select(Delivery.id).where(Delivery.channel == "sms"))
        )
        done = [
            e.event
            for e in session.scalars(
                select(LedgerEntry).where(LedgerEntry.message_id == message_id)
            )
        ]
    assert done[-2:] == ["dispatch.planned", "dispatch.expanded"]
    assert not message(session_factory, message_id).expanding


def test_a_page_that_fails_to_commit_is_written_again_and_nobody_twice(
    settings, district, approved, session_factory
):
    message_id, expected = approved
    page(settings, district, message_id)
    page(settings, district, message_id)
    before = texts(session_factory, message_id)
    url = settings.effective_database_url
    with (
        pytest.raises(RuntimeError, match="lost"),
        db.session_scope(url, settings=settings) as session,
    ):
        assert expansion.expand_page(session, district, message_id, PAGE)
        raise RuntimeError("the connection was lost before the commit")
    assert dispatch.released(session).batches == []  # nothing enqueued for rows rolled back
    assert texts(session_factory, message_id) == before

    # The sweep notices the expansion stopped making progress, and only then.
    now = utcnow()
    with session_factory() as session:
        assert expansion.stalled(session, now, after_s=60) == []
    with session_factory() as session:
        [task] = expansion.stalled(session, now + dt.timedelta(seconds=61), after_s=60)
    assert task == dispatch.Batch("sms", [message_id], task=EXPAND)

    # A page written twice (the broker handing out a task again, two tasks racing from the same
    # cursor) adds nobody: the deliveries' unique key skips phones already written.
    with session_factory() as session:
        session.get_one(Message, message_id).expanded_through = 0
    assert expansion.expand(settings, district, [message_id], page=PAGE) == []
    assert texts(session_factory, message_id) == expected


def test_an_import_mid_expansion_does_not_change_who_the_message_texts(
    run, tokens, admin, compose_closure, settings, district, approved, session_factory, tmp_path
):
    message_id, expected = approved
    page(settings, district, message_id)
    # The district's next export: other families entirely.
    newer = tmp_path / "newer.csv"
    newer.write_text(
        "phone,language,schools,routes,grades,opted_out\n+14155550100,en,lincoln-hs,12,10,no\n",
        encoding="utf-8",
    )
    run.json("contacts", "import", str(newer), "--as", "it", token=admin)
    later = utcnow() + contacts.SUPERSEDED_GRACE * 2
    frozen = message(session_factory, message_id).contacts_version
    with session_factory() as session:  # the old list stays while a message expands from it
        contacts.drop_unused_versions(session, later)  # (the sample families' list goes)
        assert session.scalar(select(func.count()).where(Contact.version == frozen)) == 120
    assert expansion.expand(settings, district, [message_id], page=PAGE) == []
    assert texts(session_factory, message_id) == expected
    with session_factory() as session:
        # Just replaced, it could still be what an approval in its transaction read as current.
        assert contacts.drop_unused_versions(session, utcnow()) == 0
        assert contacts.drop_unused_versions(session, later) == 120
        kept = session.scalars(select(Contact.phone).distinct()).all()
    assert kept == ["+14155550100"]
    # A message approved now texts the new list.
    draft = compose_closure("--channels", "sms")
    assert draft["recipients"] == 1
    submit_and_approve(run, tokens, draft)
    assert expansion.expand(settings, district, [draft["id"]], page=PAGE) == []
    assert texts(session_factory, draft["id"]) == {"+14155550100": "en"}


def test_an_opt_out_before_its_page_is_written_is_honoured(
    settings, district, approved, session_factory
):
    message_id, expected = approved
    page(settings, district, message_id)
    written = texts(session_factory, message_id)
    later = sorted(set(expected) - set(written))[-3:]
    with session_factory() as session:
        session.add_all(OptOut(phone=phone, source="STOP") for phone in later)
    assert expansion.expand(settings, district, [message_id], page=PAGE) == []
    # Stricter than a snapshot at approval: the law wants a STOP honoured from then on.
    assert texts(session_factory, message_id) == {
        phone: lang for phone, lang in expected.items() if phone not in later
    }


def settle(session_factory, message_id: int) -> None:
    """Every row written so far sent, as if the workers were quicker than the expansion."""
    with session_factory() as session:
        for row in session.scalars(select(Delivery).where(Delivery.message_id == message_id)):
            row.status, row.sent_at = "sent", utcnow()


def test_a_message_does_not_finish_while_its_texts_are_being_written(
    settings, district, approved, session_factory
):
    message_id, expected = approved
    page(settings, district, message_id)
    settle(session_factory, message_id)
    with session_factory() as session:
        assert finish_if_done(session, district, message_id) is None
    assert message(session_factory, message_id).state == "dispatching"
    assert expansion.expand(settings, district, [message_id], page=PAGE) == []
    assert message(session_factory, message_id).state == "dispatching"  # the last pages' texts
    settle(session_factory, message_id)
    with session_factory() as session:
        assert finish_if_done(session, district, message_id) == "sent"
    assert len(texts(session_factory, message_id)) == len(expected)


def test_an_audience_that_expands_to_nobody_finishes_when_the_expansion_ends(
    settings, district, approved, session_factory
):
    message_id, expected = approved
    with session_factory() as session:  # everyone texted STOP after the approval
        session.add_all(OptOut(phone=phone, source="STOP") for phone in expected)
    settle(session_factory, message_id)  # the web alert went out
    assert expansion.expand(settings, district, [message_id], page=PAGE) == []
    assert texts(session_factory, message_id) == {}
    assert message(session_factory, message_id).state == "sent"


def test_a_follow_up_texts_whom_the_original_reached_page_by_page(
    run, tokens, settings, district, approved, session_factory
):
    message_id, expected = approved
    assert expansion.expand(settings, district, [message_id], page=PAGE) == []
    settle(session_factory, message_id)
    with session_factory() as session:
        assert finish_if_done(session, district, message_id) == "sent"
        gone = sorted(expected)[5]
        session.add(OptOut(phone=gone, source="STOP"))
    update = run.json(
        "update",
        str(message_id),
        "all_clear",
        "--as",
        "ana",
        "--var",
        "school=lincoln-hs",
        "--var",
        "incident=lockdown",
        token=tokens["ana"],
    )
    assert update["recipients"] == len(expected) - 1
    submit_and_approve(run, tokens, update)
    follow_up = message(session_factory, update["id"])
    assert follow_up.expanding and follow_up.contacts_version is None
    assert expansion.expand(settings, district, [update["id"]], page=PAGE) == []
    reached = texts(session_factory, update["id"])
    assert set(reached) == set(expected) - {gone}


def test_the_audience_is_counted_by_the_database_each_phone_under_its_first_language(
    run, admin, district, session_factory, tmp_path
):
    from collections import Counter

    expected = import_families(run, admin, tmp_path, 60)
    audience = contacts.parse_audience("all", district)
    with session_factory() as session:
        version = contacts.current_version(session)
        counted = contacts.reach(session, audience, version, ["sms"], "closure")
    assert counted.by_channel == {"sms": dict(Counter(expected.values()))}


def test_a_phone_on_several_rows_is_texted_once_in_its_first_rows_language(
    run, tokens, admin, compose_closure, settings, district, session_factory, tmp_path
):
    export = tmp_path / "siblings.csv"
    export.write_text(
        "phone,language,schools,routes,grades,opted_out\n"
        "+14155550101,en,lincoln-hs,12,10,no\n"
        "+14155550102,es,lincoln-hs,12,10,no\n"
        "+14155550101,es,lincoln-hs,12,10,no\n"
        "+14155550103,es,lincoln-hs,12,10,no\n"
        "+14155550102,en,lincoln-hs,12,10,no\n",
        encoding="utf-8",
    )
    run.json("contacts", "import", str(export), "--as", "it", token=admin)
    # Pages of 2 put each phone's later row on a later page; a page of 5 holds them together.
    for size in (2, 5):
        draft = compose_closure("--channels", "sms")
        submit_and_approve(run, tokens, draft)
        assert expansion.expand(settings, district, [draft["id"]], page=size) == []
        assert texts(session_factory, draft["id"]) == {
            "+14155550101": "en",
            "+14155550102": "es",
            "+14155550103": "es",
        }, size
