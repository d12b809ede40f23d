"""X threads: the replies that carry a message's other languages after its X post (routing.py).

Each tweet of a thread is a delivery of its own, claimed, retried, looked up and recorded like any
other. A reply names the delivery whose tweet it answers (`thread_parent`) and waits, queued but
never claimed nor enqueued, until that one has a provider id: recording it copies the id into
the reply's `refers_to` (the tweet it replies to) and enqueues the reply. When the tweet it
answers cannot go out (failed, or expired), neither can the reply: it ends the same way, with the
reason, rather than wait forever; `retry` queues both again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import and_, not_, select, update
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.models import Delivery, utcnow
from broadcaster.core.states import DeliveryStatus
from broadcaster.delivery.routing import THREADED, Post

if TYPE_CHECKING:
    from broadcaster.delivery.jobs import Result

# A reply whose parent has no provider id yet: never claimed, never enqueued.
WAITING = and_(Delivery.thread_parent.is_not(None), Delivery.refers_to.is_(None))
READY = not_(WAITING)
# What a reply does when the tweet it answers will never exist.
ENDS_WITH = (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED)


def link(session: Session, message_id: int, replies: Sequence[Post]) -> None:
    """Name each reply's parent, once the message's X rows are written (same transaction)."""
    if not replies:
        return
    ids = {
        (account, locale): delivery_id
        for delivery_id, account, locale in session.execute(
            select(Delivery.id, Delivery.account, Delivery.locale).where(
                Delivery.message_id == message_id,
                Delivery.channel.in_(THREADED),
                Delivery.action == "send",
            )
        )
    }
    session.execute(
        update(Delivery),
        [
            {"id": ids[(p.account, p.locale)], "thread_parent": ids[(p.account, str(p.after))]}
            for p in replies
        ],
    )


def release(session: Session, sent: Iterable[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """(delivery id, provider id) of tweets just sent: their waiting replies now answer them.
    Returns the replies to enqueue: (message id, delivery id, channel)."""
    out: list[tuple[int, int, str]] = []
    now = utcnow()
    for parent, provider_id in sent:
        rows = session.execute(
            update(Delivery)
            .where(
                Delivery.thread_parent == parent,
                Delivery.refers_to.is_(None),
                Delivery.status == DeliveryStatus.QUEUED,
            )
            .values(refers_to=provider_id, updated_at=now)
            .returning(Delivery.message_id, Delivery.id, Delivery.channel)
            .execution_options(synchronize_session=False)
        ).all()
        out += [(row.message_id, row.id, row.channel) for row in rows]
    return out


def end_replies(session: Session, ended: Iterable[tuple[int, str]]) -> None:
    """(delivery id, status) of tweets that will never exist: their waiting replies, and theirs
    in turn, end the same way, each with the reason and its ledger entry (no provider was
    asked)."""
    now = utcnow()
    level = list(ended)
    while level:
        following: list[tuple[int, str]] = []
        for parent, status in level:
            error = f"not sent: the tweet it replies to (delivery {parent}) was {status}"
            rows = session.execute(
                update(Delivery)
                .where(
                    Delivery.thread_parent == parent,
                    WAITING,
                    Delivery.status == DeliveryStatus.QUEUED,
                )
                .values(status=status, error=error, updated_at=now)
                .returning(
                    Delivery.id,
                    Delivery.message_id,
                    Delivery.channel,
                    Delivery.account,
                    Delivery.recipient,
                )
                .execution_options(synchronize_session=False)
            ).all()
            ledger.append_many(
                session,
                [
                    ledger.Entry(
                        f"delivery.{status}",
                        {
                            "delivery": row.id,
                            "channel": row.channel,
                            "account": row.account,
                            "recipient": row.recipient,
                            "action": "send",
                            "refers_to": None,
                            "attempt": 0,
                            "how": "its thread's earlier tweet did not go out",
                            "provider_id": None,
                            "url": None,
                            "error": error,
                        },
                        message_id=row.message_id,
                    )
                    for row in rows
                ],
            )
            following += [(row.id, status) for row in rows]
        level = following


def settle(session: Session, results: Sequence[Result]) -> list[tuple[int, int, str]]:
    """What recorded outcomes mean for the replies waiting on them: released by a tweet that
    was sent, ended by one that will never be. Returns the replies to enqueue."""
    tweets = [r for r in results if r.job.channel in THREADED and r.job.action == "send"]
    end_replies(session, [(r.job.delivery_id, r.status) for r in tweets if r.status in ENDS_WITH])
    return release(
        session,
        [
            (r.job.delivery_id, r.receipt.provider_id)
            for r in tweets
            if r.status == DeliveryStatus.SENT and r.receipt is not None
        ],
    )
