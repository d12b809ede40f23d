"""Writing a channel's deliveries to families in the database: INSERT ... SELECT from rows of
(source id, recipient, language, household), each number or address once. The expansion writes a
page of the audience with it, the fallback between channels a step for the families due one.
A family whose number or address another family's delivery already has is recorded as sharing
it (`shared_deliveries`), so the reach report and the fallback count it for both."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, case, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from broadcaster.core.models import Delivery, Message, SharedDelivery, UTCDateTime
from broadcaster.core.quiet_hours import HELD_CHANNELS
from broadcaster.core.states import DeliveryStatus
from broadcaster.delivery.dispatch import held_now

_DELIVERIES = cast(Table, Delivery.__table__)  # written by Core: no ORM objects for a page
_SHARED = cast(Table, SharedDelivery.__table__)


def write(
    session: Session, message: Message, rows: Any, channel: str, now: dt.datetime
) -> list[tuple[int, str | None]]:
    """One channel's rows from `rows` (a subquery or CTE): a number or address already written
    for this channel is skipped. Returns the (id, household) of the rows written, by id."""
    source_id, recipient, locale, household = rows.c
    rendered = [r.locale for r in message.renditions if r.channel == channel]
    account = next(t.account for t in message.targets if t.channel == channel)
    columns: dict[str, ColumnElement[Any]] = {
        "message_id": literal(message.id),
        "channel": literal(channel),
        "account": literal(account),
        "recipient": recipient,
        "household": household,
        "locale": case((locale.in_(rendered), locale), else_=literal("en")),
        "status": literal(DeliveryStatus.QUEUED.value),
        "action": literal("send"),
        "attempts": literal(0),
        # Texts and calls held through quiet hours: no worker claims them before then.
        "next_attempt_at": literal(
            message.quiet_until if channel in HELD_CHANNELS and held_now(message) else None,
            UTCDateTime(),
        ),
        "created_at": literal(now, UTCDateTime()),
        "updated_at": literal(now, UTCDateTime()),
    }
    # Each number or address once, from its first row: a family's two rows with one mobile
    # (one per student) text it once, in the first row's language.
    firsts = (
        select(recipient.label("recipient"), func.min(source_id).label("id"))
        .group_by(recipient)
        .subquery()
    )
    first_of_each = (
        select(*columns.values())
        .select_from(rows)
        .join(firsts, and_(firsts.c.recipient == recipient, firsts.c.id == source_id))
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(_DELIVERIES)
        .from_select(list(columns), first_of_each)
        .on_conflict_do_nothing()  # one an earlier page, step or lost try wrote
        .returning(_DELIVERIES.c.id, _DELIVERIES.c.household)
    )
    written = sorted((int(i), h) for i, h in session.execute(statement).all())
    _share(session, message, rows, channel, account)
    return written


def _share(session: Session, message: Message, rows: Any, channel: str, account: str) -> None:
    """Each family of `rows` whose number or address this channel's delivery was written for
    another family (in this page or before) is recorded as reached by it too."""
    _, recipient, _, household = rows.c
    d = _DELIVERIES.c
    others = (
        select(d.id, household, literal(message.id))
        .select_from(rows)
        .join(
            _DELIVERIES,
            and_(
                d.message_id == message.id,
                d.channel == channel,
                d.account == account,
                d.recipient == recipient,
            ),
        )
        .where(household.is_not(None), or_(d.household.is_(None), d.household != household))
        .distinct()
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(_SHARED)
        .from_select(["delivery_id", "household", "message_id"], others)
        .on_conflict_do_nothing()
    )
