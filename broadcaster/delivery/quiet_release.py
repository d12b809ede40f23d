"""Holding a routine message's texts and calls through the district's quiet hours, and letting
them go when the night is over (core/quiet_hours.py has the rule).

At dispatch, `dispatch` records on the message when its texts and calls may go (`quiet_until`).
While that is ahead, every row written for them (the expansion's pages, a fallback's step) waits
with `next_attempt_at` at that moment, so no worker claims it, and `dispatch.batches` enqueues
none of them; the posts, the web page and the e-mails go at once. The beat's `dispatch_due`
(every BROADCASTER_SCHEDULE_EVERY seconds) calls `release_due`, which enqueues the held rows of
each message whose quiet hours have ended, once: the message's `quiet_until` is cleared in the
same transaction.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.models import Delivery, Message
from broadcaster.core.quiet_hours import HELD_CHANNELS
from broadcaster.core.states import DeliveryStatus, MessageState
from broadcaster.delivery.dispatch import Batch, batches, release_after_commit


def release_due(session: Session, now: dt.datetime) -> list[Batch]:
    """Enqueue, once committed, the held texts and calls of every message whose quiet hours
    have ended (a message taken back meanwhile has had them expired: nothing is left)."""
    due = session.scalars(
        select(Message)
        .where(Message.quiet_until.is_not(None), Message.quiet_until <= now)
        .order_by(Message.quiet_until, Message.id)
        .with_for_update(key_share=True)
    ).all()
    planned: list[Batch] = []
    for message in due:
        message.quiet_until = None
        held = session.execute(
            select(Delivery.id, Delivery.channel).where(
                Delivery.message_id == message.id,
                Delivery.channel.in_(HELD_CHANNELS),
                Delivery.status == DeliveryStatus.QUEUED,
            )
        ).all()
        ledger.append(
            session, "dispatch.quiet_hours_ended", {"released": len(held)}, message_id=message.id
        )
        if message.state == MessageState.DISPATCHING:
            planned += batches(message, [(row.id, row.channel) for row in held])
    return release_after_commit(session, planned)
