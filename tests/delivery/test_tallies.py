"""Delivery counts kept by the database (issue 12, item 2): the triggers of migration 0015 append
every change to a message's deliveries to `delivery_tallies`, and status, the dashboard and the
finishing check read their sums instead of grouping the rows.

The one property: whatever writes the rows, and whatever folds the tallies beside it, the sums
are what grouping the rows gives. Checked after each kind of write the code makes (a bulk insert,
a conditional claim, an executemany per row as the recorder writes, an ORM change, a change to
another column, a delete), on both databases; against writers racing a fold on PostgreSQL; and
across the migration that adds them, on a database that already has deliveries.
"""

from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import bindparam, delete, func, select, update

from broadcaster.core import db
from broadcaster.core.models import Delivery, DeliveryTally
from broadcaster.delivery import expansion, jobs, tallies
from tests.conftest import submit_and_approve
from tests.delivery_stack import write_contacts


@pytest.fixture
def message_id(run, tokens, compose_closure, district, tmp_path) -> int:
    """A closure to 120 contact rows by text and to the web, its texts written."""
    admin = run.json("users", "add", "it")["token"]
    write_contacts(tmp_path / "contacts.csv", 120)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms,web")
    submit_and_approve(run, tokens, draft)
    settings = run.settings()
    assert expansion.expand(settings, district, [draft["id"]], page=25) == []
    return draft["id"]


def grouped(session, message_id: int) -> dict[tuple[str, str, str], int]:
    rows = session.execute(
        select(Delivery.channel, Delivery.action, Delivery.status, func.count())
        .where(Delivery.message_id == message_id)
        .group_by(Delivery.channel, Delivery.action, Delivery.status)
    ).all()
    return {(channel, action, status): n for channel, action, status, n in rows}


def agree(session_factory, message_id: int) -> dict[tuple[str, str, str], int]:
    with session_factory() as session:
        counted = grouped(session, message_id)
        assert tallies.of_message(session, message_id) == counted
    return counted


def ids(session_factory, message_id: int, status: str) -> list[int]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(Delivery.id)
                .where(Delivery.message_id == message_id, Delivery.status == status)
                .order_by(Delivery.id)
            )
        )


def test_the_sums_are_the_rows_counted_after_every_kind_of_write(run, message_id, session_factory):
    queued = ids(session_factory, message_id, "queued")
    assert agree(session_factory, message_id) == {
        ("sms", "send", "queued"): len(queued) - 1,
        ("web", "send", "queued"): 1,
    }
    with session_factory() as session:  # a worker's conditional claim
        claimed = jobs.claim(session, queued[:60], lease_s=30)
    assert len(claimed) == 60
    agree(session_factory, message_id)
    with session_factory() as session:  # as the recorder writes: one UPDATE per row, executemany
        session.execute(
            RECORD, [{"row": i, "to": "sent" if i % 3 else "failed"} for i in claimed[:40]]
        )
    agree(session_factory, message_id)
    with session_factory() as session:  # an ORM change, and a change of another column only
        session.get_one(Delivery, claimed[50]).status = "queued"
        session.get_one(Delivery, claimed[51]).error = "no status change"
    with session_factory() as session:
        session.execute(delete(Delivery).where(Delivery.id == claimed[52]))
    counted = agree(session_factory, message_id)
    assert counted[("sms", "send", "sending")] == 60 - 40 - 2
    assert run.json("status", str(message_id))["deliveries"]["sms"]["sending"] == 18

    # Folding leaves one row per key, and the same sums.
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryTally)) > tallies.FOLD_AFTER
        assert tallies.fold(session) == 1
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryTally)) == len(counted)
        assert tallies.fold(session) == 0  # nothing crowded: untouched
    assert agree(session_factory, message_id) == counted


DELIVERIES = Delivery.__table__  # Core, as the recorder writes: no ORM bookkeeping
RECORD = (
    update(DELIVERIES).where(DELIVERIES.c.id == bindparam("row")).values(status=bindparam("to"))
)
# Each writer moves its own rows through these, in an order the other writers do not share: a
# design that locked a shared counter row per status would deadlock here.
CYCLES = [
    ["queued", "sending", "sent", "queued"],
    ["queued", "failed", "sending", "queued"],
    ["queued", "expired", "sent", "sending", "queued"],
]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_writers_racing_a_fold_lose_no_change(message_id, session_factory):
    rows = ids(session_factory, message_id, "queued")
    shares = [rows[i :: len(CYCLES)] for i in range(len(CYCLES))]
    failures: list[BaseException] = []
    writing = threading.Event()

    def write(share: list[int], cycle: list[str]) -> None:
        try:
            for _ in range(15):
                for status in cycle[1:]:
                    with session_factory() as session:
                        session.execute(RECORD, [{"row": i, "to": status} for i in share[:20]])
                        session.execute(
                            update(Delivery)
                            .where(Delivery.id.in_(share[20:]))
                            .values(status=status)
                        )
        except BaseException as exc:  # reported below, in the test's own thread
            failures.append(exc)

    def fold() -> None:
        try:
            while writing.is_set():
                with session_factory() as session:
                    tallies.fold(session)
        except BaseException as exc:
            failures.append(exc)

    writers = [
        threading.Thread(target=write, args=(share, cycle))
        for share, cycle in zip(shares, CYCLES, strict=True)
    ]
    writing.set()
    folder = threading.Thread(target=fold)
    folder.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    folder.join()
    assert failures == []
    assert agree(session_factory, message_id) == {
        ("sms", "send", "queued"): len(rows) - 1,
        ("web", "send", "queued"): 1,
    }


def test_the_migration_tallies_the_deliveries_already_there(message_id, db_url, session_factory):
    with session_factory() as session:  # some moved on before the upgrade
        session.execute(update(Delivery).where(Delivery.channel == "web").values(status="sent"))
        counted = grouped(session, message_id)
    config = db.alembic_config(db_url)
    command.downgrade(config, "0014")
    command.upgrade(config, "head")
    assert agree(session_factory, message_id) == counted
    with session_factory() as session:  # and the triggers are back
        session.execute(update(Delivery).where(Delivery.channel == "sms").values(status="sent"))
    agree(session_factory, message_id)
