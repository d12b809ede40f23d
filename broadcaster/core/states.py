"""A delivery's states, named once. The database stores their values, and a `StrEnum` member
equals its value, so these compare with what a query returns."""

from __future__ import annotations

from enum import StrEnum


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
