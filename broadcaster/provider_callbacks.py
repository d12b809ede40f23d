"""Delivery reports from providers (Twilio's status callbacks), applied to the delivery rows.

A report can arrive before the worker has recorded the provider's id for that delivery (the
provider answers the send, then reports within a second, while the worker is still sending the
rest of its batch). Such a report is held, not dropped, and applied when the id is recorded — by
the worker right after recording, and by the periodic sweep as the safety net.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broadcaster import ledger
from broadcaster.models import Delivery, HeldCallback, utcnow

# A provider's report moves a delivery forward only: a late "sent" never undoes "delivered".
REPORTED = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}
ADVANCES_FROM = {"delivered": ("sent",), "failed": ("sent", "delivered")}
# Reports for ids no delivery ever gets (another system on the same account) are let go.
HOLD_FOR = dt.timedelta(days=2)


def report(session: Session, provider_id: str, status: str, error_code: str | None) -> None:
    """Apply one report now, or hold it until its delivery's provider id is recorded."""
    if status not in REPORTED:
        return  # queued, sending, sent: nothing to change
    delivery = session.scalar(
        select(Delivery).where(Delivery.provider_id == provider_id).with_for_update()
    )
    if delivery is None:
        session.add(HeldCallback(provider_id=provider_id, status=status, error_code=error_code))
        return
    _apply(session, delivery, status, error_code)


def apply_held(session: Session, provider_ids: list[str] | None = None) -> int:
    """Apply held reports whose delivery is now known (only for these ids, when given)."""
    query = select(HeldCallback, Delivery).join(
        Delivery, Delivery.provider_id == HeldCallback.provider_id
    )
    if provider_ids is not None:
        if not provider_ids:
            return 0
        query = query.where(HeldCallback.provider_id.in_(provider_ids))
    rows = session.execute(query.order_by(HeldCallback.id).with_for_update()).all()
    for held, delivery in rows:
        _apply(session, delivery, held.status, held.error_code)
        session.delete(held)
    if provider_ids is None:
        session.execute(delete(HeldCallback).where(HeldCallback.received_at < utcnow() - HOLD_FOR))
    return len(rows)


def _apply(session: Session, delivery: Delivery, status: str, error_code: str | None) -> None:
    new = REPORTED[status]
    if delivery.status not in ADVANCES_FROM[new]:
        return
    delivery.status, delivery.updated_at = new, utcnow()
    if error_code:
        delivery.error = f"Twilio error {error_code} ({status})"
    ledger.append(
        session,
        f"delivery.{new}",
        {
            "delivery": delivery.id,
            "provider_id": delivery.provider_id,
            "status": status,
            "error_code": error_code,
        },
        message_id=delivery.message_id,
    )
