"""What reached a family, per channel: the one rule the fallback and the reach report share.

A text or call reached the family when the provider reported it `delivered` (for a call,
Twilio's `completed`: a person or a voicemail answered); an e-mail when the mail server accepted
it (`sent`: there are no delivery reports). `failed` and `expired` were tried and did not reach;
anything else may still reach. A number or address two families share is sent to once, and
that delivery is each family's (`family_deliveries`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Subquery, and_, or_, select, union_all

from broadcaster.core.models import Delivery, SharedDelivery
from broadcaster.core.states import DeliveryStatus

REACHES: dict[str, tuple[str, ...]] = {
    "sms": (DeliveryStatus.DELIVERED,),
    "voice": (DeliveryStatus.DELIVERED,),
    "email": (DeliveryStatus.SENT, DeliveryStatus.DELIVERED),
}
DID_NOT_REACH: tuple[str, ...] = (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED)
# Channels whose `sent` still waits for the provider's report.
AWAIT_A_REPORT = tuple(c for c, s in REACHES.items() if DeliveryStatus.SENT not in s)
IN_HAND = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)  # a worker has yet to send it


def reached_by(channel: str, status: str) -> bool:
    return status in REACHES.get(channel, ())


def reached(row: Any) -> ColumnElement[bool]:
    """A row of `family_deliveries` (its columns) that reached its family."""
    return or_(*(and_(row.channel == c, row.status.in_(s)) for c, s in REACHES.items()))


def still_open(waited_since: dt.datetime, row: Any) -> ColumnElement[bool]:
    """A row of `family_deliveries` still going out, or sent after `waited_since` and waiting
    for a report that may yet say it reached (one sent before then is, for the fallback, not
    delivered)."""
    return or_(
        row.status.in_(IN_HAND),
        and_(
            row.channel.in_(AWAIT_A_REPORT),
            row.status == DeliveryStatus.SENT,
            row.sent_at > waited_since,
        ),
    )


def family_deliveries(message_id: int, channels: Sequence[str]) -> Subquery:
    """The message's sends on these channels, a row per family and delivery: each delivery
    under the family it was written for (None for a rehearsal's), and again under each other
    family that shares its number or address (`shared_deliveries`)."""
    columns = (
        Delivery.id,
        Delivery.channel,
        Delivery.recipient,
        Delivery.status,
        Delivery.error,
        Delivery.sent_at,
        Delivery.updated_at,
    )
    sends = (
        Delivery.message_id == message_id,
        Delivery.action == "send",
        Delivery.channel.in_(channels),
    )
    own = select(Delivery.household.label("household"), *columns).where(*sends)
    shared = (
        select(SharedDelivery.household.label("household"), *columns)
        .join(SharedDelivery, SharedDelivery.delivery_id == Delivery.id)
        .where(SharedDelivery.message_id == message_id, *sends)
    )
    return union_all(own, shared).subquery()
