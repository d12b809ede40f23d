"""A message's states and kinds and a delivery's states, named once. The database stores their
values, and a `StrEnum` member equals its value, so these compare with what a query returns."""

from __future__ import annotations

from enum import StrEnum


class MessageState(StrEnum):
    """Where a message is in its life (core/lifecycle.py's table moves it)."""

    DRAFT = "draft"
    SUBMITTED = "submitted"  # waiting for a second person
    APPROVED = "approved"
    SCHEDULED = "scheduled"  # approved, waiting for its send_at
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    DISPATCHING = "dispatching"  # its deliveries are being sent
    SENT = "sent"
    PARTIALLY_SENT = "partially_sent"
    FAILED = "failed"
    EXPIRED = "expired"  # its valid_until passed before it could go out
    RETRACTING = "retracting"  # its posts are being taken down
    RETRACTED = "retracted"


class MessageKind(StrEnum):
    """CAP's status: only an actual message reaches the public; the others are rehearsals."""

    ACTUAL = "actual"
    EXERCISE = "exercise"
    TEST = "test"


# Rehearsals go only to the test allowlist (core/rehearsals.py).
REHEARSAL_KINDS = (MessageKind.TEST, MessageKind.EXERCISE)


class DeliveryStatus(StrEnum):
    QUEUED = "queued"  # waiting for a worker (or for its retry time)
    SENDING = "sending"  # claimed by a worker, or waiting for the sweep to look it up
    SENT = "sent"  # the provider took it
    DELIVERED = "delivered"  # the provider reported it reached the phone
    FAILED = "failed"
    EXPIRED = "expired"  # not sent: the message's valid_until passed first


# A worker still has to send (or reconcile) these.
OPEN = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
# These reached the provider, or the phone.
SUCCEEDED = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED)
