"""Where a message's deliveries stand, per channel."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.core import follow_ups
from broadcaster.core.config import DistrictConfig
from broadcaster.core.models import Delivery, Message
from broadcaster.core.redaction import mask, mask_phones
from broadcaster.core.states import DeliveryStatus
from broadcaster.delivery.scheduling import timing_view

STATUSES = tuple(status.value for status in DeliveryStatus)
ACTIVE_STATES = ("approved", "dispatching")
RETRACTION_STATES = ("retracting", "retracted")


def status_view(session: Session, message: Message, district: DistrictConfig) -> dict[str, Any]:
    rows = session.execute(
        select(Delivery.channel, Delivery.status, func.count())
        .where(Delivery.message_id == message.id, Delivery.action == "send")
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
    view: dict[str, Any] = {
        "id": message.id,
        "state": message.state,
        **timing_view(message, district),
        "deliveries": deliveries,
        "failures": [
            {"channel": c, "target": _mask(c, r), "error": mask_phones(e)} for c, r, e in failures
        ],
    }
    notice = message if message.follow_kind == "retraction" else None
    if message.state in RETRACTION_STATES:
        notice = follow_ups.notice_of(session, message.id)
    if notice is not None:
        view["retraction"] = retraction_view(session, notice)
    return view


def retraction_view(session: Session, notice: Message) -> dict[str, Any]:
    """What a retraction took down, what is still up (a deletion not done yet, or failed), and
    where its correction texts stand."""
    deletions = session.execute(
        select(
            Delivery.channel, Delivery.account, Delivery.refers_to, Delivery.status, Delivery.error
        )
        .where(Delivery.message_id == notice.id, Delivery.action == "delete")
        .order_by(Delivery.id)
    ).all()
    texts = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.message_id == notice.id, Delivery.action == "send")
        .group_by(Delivery.status)
    ).all()
    return {
        "notice": notice.id,
        "state": notice.state,
        "deleted": [
            {"channel": c, "account": a, "post": p} for c, a, p, s, _ in deletions if s == "sent"
        ],
        "still_live": [
            {"channel": c, "account": a, "post": p, "status": s, "error": mask_phones(e)}
            for c, a, p, s, e in deletions
            if s != "sent"
        ],
        "corrections": {**dict.fromkeys(STATUSES, 0), **dict(texts)},
    }


def in_progress(view: dict[str, Any]) -> bool:
    """Still moving: being dispatched, or a retraction whose deletions and texts are under way."""
    retraction = view.get("retraction")
    if view["state"] in ACTIVE_STATES:
        return True
    if retraction is None:
        return False
    # The notice's last deletion settles the original in the same transaction, so "still
    # retracting with nothing live" is a view read between the two (READ COMMITTED): not done.
    return retraction["state"] in ACTIVE_STATES or (
        view["state"] == "retracting" and not retraction["still_live"]
    )


def _mask(channel: str, recipient: str) -> str:
    """A text's recipient is shown masked, as everywhere else (redaction.mask)."""
    return mask(recipient) if channel == "sms" else recipient
