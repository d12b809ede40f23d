"""Scheduling: an approved message with a future `send_at` waits in `scheduled`, and a periodic
task (the beat's `dispatch_due`, every BROADCASTER_SCHEDULE_EVERY seconds) dispatches what is due.

The time lives in the database, not in a broker ETA: Redis hands a long-delayed task out again
after its visibility timeout (DESIGN.md). Several beats may run `dispatch_due` at once: the
transition's conditional UPDATE lets exactly one of them take each message, and the delivery
claims guarantee once per target anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import Refused
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Message, utcnow
from broadcaster.core.states import MessageState
from broadcaster.delivery import checkpointing
from broadcaster.delivery.dispatch import Batch, dispatch

log = logging.getLogger(__name__)


def local_time(moment: dt.datetime | None, district: DistrictConfig) -> str | None:
    """District time with its abbreviation, e.g. "2026-03-03 05:30 PST"."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(district.district.time_zone)).strftime("%Y-%m-%d %H:%M %Z")


def scheduled_for(message: Message, district: DistrictConfig) -> str | None:
    """The send time to announce, when the message is waiting for it."""
    return (
        local_time(message.send_at, district) if message.state == MessageState.SCHEDULED else None
    )


def dispatch_or_schedule(
    session: Session, district: DistrictConfig, message: Message
) -> list[Batch]:
    """Right after approval: dispatch now, or wait in `scheduled` when send_at is ahead (no
    batches then; `dispatch_due` writes the delivery rows when the time comes)."""
    if message.send_at is not None and message.send_at > utcnow():
        when = local_time(message.send_at, district)
        transition(session, message, "schedule", None, district, reason=f"sends at {when}")
        return []
    return dispatch(session, district, message)


def dispatch_due(session: Session, district: DistrictConfig, now: dt.datetime) -> list[Batch]:
    """Dispatch every scheduled message whose send_at has come; one whose valid_until has
    passed too is expired, never sent. The commit enqueues the batches (returned for counting)."""
    due = session.scalars(
        select(Message)
        .where(Message.state == MessageState.SCHEDULED, Message.send_at <= now)
        .order_by(Message.send_at, Message.id)
    ).all()
    planned: list[Batch] = []
    for message in due:
        try:
            with session.begin_nested():  # one message's trouble must not hold back the others
                planned += _go(session, district, message, now)
        except Refused as exc:  # most often: another beat took it first
            log.info("scheduled message %s not dispatched: %s", message.id, exc)
    return planned


def _go(
    session: Session, district: DistrictConfig, message: Message, now: dt.datetime
) -> list[Batch]:
    if message.valid_until is not None and message.valid_until <= now:
        reason = (
            f"valid until {local_time(message.valid_until, district)} passed before it could "
            f"be sent (send at {local_time(message.send_at, district)}); nothing was sent"
        )
        transition(session, message, "expire", None, district, reason=reason)
        checkpointing.sign_after_commit(session, district)
        return []
    return dispatch(session, district, message)
