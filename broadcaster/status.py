"""Where a message's deliveries stand, per channel."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.models import Delivery, Message

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
