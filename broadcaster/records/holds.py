"""Legal holds: while one stands, retention destroys nothing it covers.

A hold covers one message, or every message active in a range of the district's days (composed
before the range ends and last communicated after it starts). Placing and releasing a hold are
ledger entries; a released hold stays listed, with who released it and when.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.authoring.messages import get_message
from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import REASON, BadInput, Needed, NotFound, Refused
from broadcaster.core.models import RecordHold, User, utcnow
from broadcaster.core.permissions import require
from broadcaster.core.text_safety import check_reason

DAY = "YYYY-MM-DD"  # how a day is written


def parse_day(value: str, option: str) -> dt.date:
    # Said back to the user only when short: a day is 10 characters, a pasted page is not one.
    typed = repr(value) if len(value) <= 40 else f"of {len(value)} characters"
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{option} {typed} is not a date (write {DAY})") from None


def day_range(
    district: DistrictConfig, first: dt.date, last: dt.date
) -> tuple[dt.datetime, dt.datetime]:
    """The district's days first..last (inclusive) as UTC bounds [start, end)."""
    if last < first:
        raise BadInput(f"the last day ({last}) is before the first ({first})")
    zone = ZoneInfo(district.district.time_zone)
    try:
        start = dt.datetime.combine(first, dt.time(), zone)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    except OverflowError:  # the first or the last day of the calendar Python keeps
        raise BadInput(
            f"{first}..{last} reaches the end of the calendar; "
            "use days from 0002-01-01 to 9998-12-31"
        ) from None


def days_asked(
    district: DistrictConfig, what: str, first: dt.date | None, last: dt.date | None
) -> tuple[dt.datetime, dt.datetime] | None:
    """The UTC bounds of the days first..last, None when neither is given; BadInput naming the
    missing one (each front door says how to give it: an option, a form field)."""
    if first is None and last is None:
        return None
    if first is None or last is None:
        end, field = ("first", "from") if first is None else ("last", "to")
        raise BadInput(f"{what} needs its {end} day", Needed(field, shape=DAY))
    return day_range(district, first, last)


def local_day(district: DistrictConfig, moment: dt.datetime) -> str:
    return moment.astimezone(ZoneInfo(district.district.time_zone)).date().isoformat()


def place(
    session: Session,
    district: DistrictConfig,
    actor: User,
    reason: str,
    message_id: int | None = None,
    first: dt.date | None = None,
    last: dt.date | None = None,
) -> RecordHold:
    require(actor, "manage_records", district)
    reason = check_reason("reason", reason, "say why the records are held", REASON)
    days = days_asked(district, "a hold on a range of days", first, last)
    if message_id is not None and days is not None:
        raise BadInput("hold one message or a range of days, not both")
    hold = RecordHold(reason=reason, placed_by=actor.name)
    if message_id is not None:
        hold.message_id = get_message(session, message_id).id
    elif days is not None:
        hold.starts_at, hold.ends_at = days
    else:
        raise BadInput("say what to hold: one message, or a range of days (the first and the last)")
    session.add(hold)
    session.flush()
    # Not tied to the message (message_id=None), so purging the message never erases its holds.
    ledger.append(
        session,
        "records.hold_placed",
        {**view(district, hold), "by": actor.name},
        actor=actor.name,
    )
    return hold


def release(session: Session, district: DistrictConfig, actor: User, hold_id: int) -> RecordHold:
    require(actor, "manage_records", district)
    hold = session.get(RecordHold, hold_id)
    if hold is None:
        raise NotFound(f"no hold {hold_id}", Needed("hold"))
    if hold.released_at is not None:
        raise Refused(f"hold {hold_id} was already released by {hold.released_by}")
    hold.released_by, hold.released_at = actor.name, utcnow()
    session.flush()
    ledger.append(
        session,
        "records.hold_released",
        {"hold": hold.id, "by": actor.name},
        actor=actor.name,
    )
    return hold


def list_holds(session: Session, include_released: bool = False) -> list[RecordHold]:
    query = select(RecordHold).order_by(RecordHold.id)
    if not include_released:
        query = query.where(RecordHold.released_at.is_(None))
    return list(session.scalars(query))


def covers(hold: RecordHold, message_id: int, first: dt.datetime, last: dt.datetime) -> bool:
    """Whether the hold covers a message active from `first` (composed) to `last`."""
    if hold.message_id is not None:
        return hold.message_id == message_id
    assert hold.starts_at is not None and hold.ends_at is not None  # noqa: S101 (a CHECK constraint)
    return first < hold.ends_at and last >= hold.starts_at


def covers_moment(hold: RecordHold, moment: dt.datetime) -> bool:
    """Whether a range hold covers a ledger entry made at `moment` (not tied to a message)."""
    if hold.starts_at is None or hold.ends_at is None:
        return False
    return hold.starts_at <= moment < hold.ends_at


def view(district: DistrictConfig, hold: RecordHold) -> dict[str, Any]:
    return {
        "hold": hold.id,
        "message": hold.message_id,
        "from": local_day(district, hold.starts_at) if hold.starts_at else None,
        "to": local_day(district, hold.ends_at - dt.timedelta(seconds=1)) if hold.ends_at else None,
        "reason": hold.reason,
        "placed_by": hold.placed_by,
        "placed_at": hold.placed_at.isoformat() if hold.placed_at else None,
        "released_by": hold.released_by,
        "released_at": hold.released_at.isoformat() if hold.released_at else None,
    }
