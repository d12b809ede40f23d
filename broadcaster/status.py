"""Where a message's deliveries stand, per channel."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from broadcaster import ledger
from broadcaster.config import DistrictConfig
from broadcaster.dispatch import Batch, batches
from broadcaster.errors import Refused
from broadcaster.lifecycle import transition
from broadcaster.models import Delivery, Message, User, utcnow

STATUSES = ("queued", "sending", "sent", "delivered", "failed", "expired")
ACTIVE_STATES = ("approved", "dispatching")


def status_view(session: Session, message: Message) -> dict[str, Any]:
    rows = session.execute(
        select(Delivery.channel, Delivery.status, func.count())
        .where(Delivery.message_id == message.id)
        .group_by(Delivery.channel, Delivery.status)
    ).all()
    deliveries: dict[str, dict[str, int]] = {}
    for channel in message.channels:
        deliveries[channel] = dict.fromkeys(STATUSES, 0)
    for channel, status, count in rows:
        deliveries.setdefault(channel, dict.fromkeys(STATUSES, 0))[status] = count
    failures = session.execute(
        select(Delivery.channel, Delivery.recipient, Delivery.error)
        .where(Delivery.message_id == message.id, Delivery.status.in_(("failed", "expired")))
        .order_by(Delivery.id)
        .limit(20)
    ).all()
    return {
        "id": message.id,
        "state": message.state,
        "deliveries": deliveries,
        "failures": [{"channel": c, "target": _mask(c, r), "error": e} for c, r, e in failures],
    }


def _mask(channel: str, recipient: str) -> str:
    """Phone numbers are shown as their last digits only."""
    return f"…{recipient[-4:]}" if channel == "sms" else recipient


def retry_failed(
    session: Session, district: DistrictConfig, message: Message, actor: User
) -> list[Batch]:
    """Queue again the deliveries that failed; those that were sent are never touched, and an
    expired text stays expired."""
    failed = session.execute(
        select(Delivery.id, Delivery.channel).where(
            Delivery.message_id == message.id, Delivery.status == "failed"
        )
    ).all()
    if not failed:
        raise Refused(f"message {message.id} has no failed deliveries to send again")
    transition(session, message, "retry", actor, district, deliveries=len(failed))
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_([d.id for d in failed]))
        .values(status="queued", next_attempt_at=None, attempts=0, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    ledger.append(
        session,
        "delivery.requeued",
        {"deliveries": [d.id for d in failed]},
        message_id=message.id,
        actor=actor.name,
    )
    return batches(message, [(d.id, d.channel) for d in failed])
