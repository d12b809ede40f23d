"""How a message's delivery is shown: typed view models (pydantic) of its timing, its
per-channel progress and failures, and a retraction's progress, each with the function that
builds it from the database (`timing_view`, `status_view`, `retraction_view`; the queries are
in status.py). The API answers them, the CLI prints them (and --json dumps them), the console
renders them, and web/openapi.py documents the API's responses from these same classes.

Also the base of every view model (authoring/views.py builds on it) and the pieces most views
share: a message's id and state, and its timing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict, SkipJsonSchema
from sqlalchemy.orm import Session

from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import CHANNELS
from broadcaster.core.lifecycle import STATES
from broadcaster.core.models import Message
from broadcaster.core.redaction import mask_contacts, mask_recipient
from broadcaster.core.states import MessageState
from broadcaster.delivery import status
from broadcaster.delivery.scheduling import local_time
from broadcaster.delivery.status import ACTIVE_STATES, STATUSES

# Literals built from the services' tuples at run time, for pydantic: mypy sees none of them.
State = Literal[STATES]  # type: ignore[valid-type]  # a Literal made at run time
Channel = Literal[CHANNELS]  # type: ignore[valid-type]  # a Literal made at run time
DeliveryStatusValue = Literal[STATUSES]  # type: ignore[valid-type]  # a Literal made at run time


class View(BaseModel):
    """The base of every view model. A key the model does not name is an error, so a view
    that drifts from its documented shape fails at once.

    A view's fields come base by base, the last-named base first, then its own: the JSON
    keeps its keys in that order (e.g. `Status(Timing, Identified)` starts with id and state).
    """

    model_config = ConfigDict(extra="forbid")


def without_default(schema: JsonDict) -> None:
    """A field's schema without the `default` pydantic puts there: a key left out is not null."""
    schema.pop("default", None)


def absent_when_none() -> Any:
    """A field whose key is left out of the JSON when it has no value, never null (e.g. an SMS
    rendition's segments); its schema is the value's, not required."""
    return Field(None, exclude_if=lambda value: value is None, json_schema_extra=without_default)


class Identified(View):
    """Which message, and its state: the first keys of most views."""

    id: int
    state: State


class Timing(View):
    """When a message goes out and until when: ISO 8601 with the district's offset, and
    "YYYY-MM-DD HH:MM ZZZ" in district time."""

    send_at: str | None
    send_at_local: str | None
    valid_until: str | None
    valid_until_local: str | None


class Failure(View):
    channel: Channel
    target: str  # a phone number shows its last four digits only
    error: str | None


class Post(View):
    channel: Channel
    account: str
    post: str | None  # the provider's id of the post


class LivePost(Post):
    status: DeliveryStatusValue
    error: str | None  # why the deletion failed, if it did


class Retraction(View):
    notice: int  # the retraction notice: a message whose deliveries delete and correct
    state: State
    deleted: list[Post]
    still_live: list[LivePost]
    corrections: dict[DeliveryStatusValue, int]


class Status(Timing, Identified):
    deliveries: dict[Channel, dict[DeliveryStatusValue, int]]
    # A worker is still writing its texts (delivery/expansion.py): their counts still grow.
    texts_being_written: bool = False
    # Its texts and calls wait for the district's quiet hours to end, then (district time).
    quiet_until_local: str | SkipJsonSchema[None] = absent_when_none()
    failures: list[Failure]
    # A message being (or that was) retracted; the notice itself shows its own retraction.
    retraction: Retraction | SkipJsonSchema[None] = absent_when_none()

    def in_progress(self) -> bool:
        """Still moving: being dispatched, or a retraction whose deletions and texts are under
        way."""
        if self.state in ACTIVE_STATES:
            return True
        if self.retraction is None:
            return False
        # The notice's last deletion settles the original in the same transaction, so "still
        # retracting with nothing live" is a view read between the two (READ COMMITTED): not
        # done.
        return self.retraction.state in ACTIVE_STATES or (
            self.state == MessageState.RETRACTING and not self.retraction.still_live
        )


def timing_view(message: Message, district: DistrictConfig) -> Timing:
    """When a message goes out and until when, in district time: ISO 8601 with the offset for
    programs, and with the zone's abbreviation for people."""
    return Timing(
        send_at=_iso(message.send_at, district),
        send_at_local=local_time(message.send_at, district),
        valid_until=_iso(message.valid_until, district),
        valid_until_local=local_time(message.valid_until, district),
    )


def _iso(moment: dt.datetime | None, district: DistrictConfig) -> str | None:
    if moment is None:
        return None
    zone = ZoneInfo(district.district.time_zone)
    return moment.astimezone(zone).isoformat(timespec="seconds")


def status_view(session: Session, message: Message, district: DistrictConfig) -> Status:
    """Where a message's deliveries stand, per channel, and its first failures."""
    notice = status.retraction_notice(session, message)
    return Status(
        id=message.id,
        state=message.state,
        **dict(timing_view(message, district)),
        deliveries=status.delivery_counts(session, message),
        texts_being_written=message.expanding,
        quiet_until_local=local_time(message.quiet_until, district),
        failures=[
            Failure(channel=c, target=mask_recipient(c, r), error=mask_contacts(e))
            for c, r, e in status.failures(session, message)
        ],
        retraction=retraction_view(session, notice) if notice is not None else None,
    )


def retraction_view(session: Session, notice: Message) -> Retraction:
    """What a retraction took down, what is still up (a deletion not done yet, or failed), and
    where its correction texts stand."""
    deletions = status.deletions(session, notice)
    return Retraction(
        notice=notice.id,
        state=notice.state,
        deleted=[Post(channel=c, account=a, post=p) for c, a, p, s, _ in deletions if s == "sent"],
        still_live=[
            LivePost(channel=c, account=a, post=p, status=s, error=mask_contacts(e))
            for c, a, p, s, e in deletions
            if s != "sent"
        ],
        corrections=status.correction_counts(session, notice),
    )
