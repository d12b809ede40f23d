"""Where a message's deliveries stand: the queries behind delivery/views.py's Status and
Retraction, and the states that say a message is still moving."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from broadcaster.core import follow_ups
from broadcaster.core.models import Delivery, Message
from broadcaster.core.states import DeliveryStatus, MessageState
from broadcaster.delivery import tallies

STATUSES = tuple(status.value for status in DeliveryStatus)
ACTIVE_STATES = (MessageState.APPROVED, MessageState.DISPATCHING)
RETRACTION_STATES = (MessageState.RETRACTING, MessageState.RETRACTED)
FAILURES_SHOWN = 20


def delivery_counts(session: Session, message: Message) -> dict[str, dict[str, int]]:
    """The message's sends per channel and status: its own channels first, every status named.
    From the tallies: a refresh costs the same at a million texts as at ten."""
    counts: dict[str, dict[str, int]] = {}
    for channel in message.channels:
        counts[channel] = dict.fromkeys(STATUSES, 0)
    for (channel, action, status), count in tallies.of_message(session, message.id).items():
        if action == "send":
            counts.setdefault(channel, dict.fromkeys(STATUSES, 0))[status] = count
    return counts


def failures(session: Session, message: Message) -> Sequence[Row[str, str, str | None]]:
    """The first sends that failed or expired: channel, recipient (unmasked) and error."""
    return session.execute(
        select(Delivery.channel, Delivery.recipient, Delivery.error)
        .where(Delivery.message_id == message.id, Delivery.status.in_(("failed", "expired")))
        .order_by(Delivery.id)
        .limit(FAILURES_SHOWN)
    ).all()


def retraction_notice(session: Session, message: Message) -> Message | None:
    """The notice whose retraction a message's status shows: the message itself when it is
    one, the notice of a message being (or that was) retracted, else none."""
    if message.state in RETRACTION_STATES:
        return follow_ups.notice_of(session, message.id)
    return message if message.follow_kind == "retraction" else None


def deletions(
    session: Session, notice: Message
) -> Sequence[Row[str, str, str | None, str, str | None]]:
    """A retraction notice's deletions: channel, account, the post, status and error."""
    return session.execute(
        select(
            Delivery.channel, Delivery.account, Delivery.refers_to, Delivery.status, Delivery.error
        )
        .where(Delivery.message_id == notice.id, Delivery.action == "delete")
        .order_by(Delivery.id)
    ).all()


def correction_counts(session: Session, notice: Message) -> dict[str, int]:
    """A retraction notice's correction texts per status, every status named."""
    counts = dict.fromkeys(STATUSES, 0)
    for (_, action, status), count in tallies.of_message(session, notice.id).items():
        if action == "send":
            counts[status] += count
    return counts
