"""One release path: writing delivery rows registers their enqueue on the session, and only the
commit runs it. A transaction that rolls back (or a savepoint that does) hands the broker
nothing; one that commits hands it every batch once: the posts' deliveries, and the task that
writes the texts after it (issue 12). The broker is the real test Redis."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import select

from broadcaster.authoring import messages
from broadcaster.core import db
from broadcaster.core.models import Delivery, Message, User
from broadcaster.delivery import dispatch
from broadcaster.delivery.celery_app import CHANNEL_QUEUE, EXPAND, SEND, URGENT
from tests.delivery_stack import REDIS_DB, REDIS_SERVER

QUEUES = sorted({*CHANNEL_QUEUE.values(), URGENT})
BROKER = f"{REDIS_SERVER}/{REDIS_DB}"


@pytest.fixture
def broker():
    """The test Redis as the broker, its queues empty before and after."""
    client = redis.Redis.from_url(BROKER)
    client.delete(*QUEUES)
    yield client
    client.delete(*QUEUES)
    client.close()


def queued(broker: redis.Redis) -> int:
    return sum(broker.llen(queue) for queue in QUEUES)


@pytest.fixture
def submitted(run, tokens, compose_closure) -> int:
    draft = compose_closure()
    assert run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
    return draft["id"]


def approve(session, district, message_id: int) -> list[dispatch.Batch]:
    ben = session.scalars(select(User).where(User.name == "ben")).one()
    message = session.get_one(Message, message_id)
    return messages.approve_and_dispatch(session, district, message, ben, ack_warnings=True)


def test_a_rolled_back_approval_hands_the_broker_nothing(run, district, submitted, broker):
    settings = run.settings().model_copy(update={"broker_url": BROKER})
    url = settings.effective_database_url
    with (
        pytest.raises(RuntimeError, match="after the rows"),
        db.session_scope(url, settings=settings) as session,
    ):
        assert approve(session, district, submitted)  # rows written, batches planned
        raise RuntimeError("something failed after the rows were written")
    assert dispatch.released(session).batches == [] and queued(broker) == 0
    with db.session_scope(settings.effective_database_url) as session:
        assert session.get_one(Message, submitted).state == "submitted"
        assert session.scalars(select(Delivery)).all() == []


def test_a_committed_approval_hands_the_broker_every_batch_once(run, district, submitted, broker):
    settings = run.settings().model_copy(update={"broker_url": BROKER})
    with db.session_scope(settings.effective_database_url, settings=settings) as session:
        planned = approve(session, district, submitted)
        assert queued(broker) == 0  # nothing before the commit
    done = dispatch.released(session)
    assert done.warning is None and done.batches == planned
    assert queued(broker) == len(planned)
    with db.session_scope(settings.effective_database_url) as session:
        rows = session.scalars(select(Delivery.id).where(Delivery.thread_parent.is_(None))).all()
        replies = session.scalars(select(Delivery.id).where(Delivery.thread_parent.isnot(None)))
        assert len(replies.all()) == 1  # the Spanish X reply: queued when its tweet is sent
    # The posts' rows are written and released by the approval; the texts by the expand task.
    assert sorted(rows) == sorted(i for batch in planned if batch.task == SEND for i in batch.ids)
    assert [batch.ids for batch in planned if batch.task == EXPAND] == [[submitted]]


def test_a_broker_that_is_down_is_a_warning_and_the_rows_stay(run, district, submitted):
    settings = run.settings().model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with db.session_scope(settings.effective_database_url, settings=settings) as session:
        planned = approve(session, district, submitted)
    done = dispatch.released(session)
    assert done.warning and "sweep will send them" in done.warning
    with db.session_scope(settings.effective_database_url) as session:
        assert session.get_one(Message, submitted).state == "dispatching"
        released = select(Delivery.id).where(Delivery.thread_parent.is_(None))
        assert (
            len(session.scalars(released).all())
            == done.total
            == sum(len(batch.ids) for batch in planned if batch.task == SEND)
        )


def test_a_session_without_settings_cannot_dispatch(run, district, submitted):
    url = run.settings().effective_database_url
    with pytest.raises(RuntimeError, match="needs session_scope"), db.session_scope(url) as session:
        approve(session, district, submitted)
    with db.session_scope(url) as session:
        assert session.get_one(Message, submitted).state == "submitted"


def test_hooks_run_once_on_the_commit_and_never_for_a_rolled_back_savepoint(db_url):
    ran: list[str] = []
    with db.session_scope(db_url) as session:
        db.after_commit(session, lambda: ran.append("outer"))
        with session.begin_nested():
            db.after_commit(session, lambda: ran.append("kept savepoint"))
        with pytest.raises(ValueError), session.begin_nested():
            db.after_commit(session, lambda: ran.append("rolled back savepoint"))
            with session.begin_nested():
                db.after_commit(session, lambda: ran.append("inside it"))
            raise ValueError
        assert ran == []  # a savepoint's release is not the commit
    assert ran == ["outer", "kept savepoint"]
    with db.session_scope(db_url) as session:  # a new transaction starts with no hooks
        pass
    assert ran == ["outer", "kept savepoint"]
