"""Fallback between channels: a family nothing reached gets its category's next channel.

A category's escalation (`[escalation.CATEGORY]` in the district file; emergencies by default:
text, call, e-mail, 2 minutes) orders the channels that reach families. The expansion writes each
family only its first step it can take (`first_steps`: a family without a mobile starts with a
call). The sweep then asks, for every message still `escalating`, which families are due their
next step (`due`): nothing of theirs reached them (`reaching`: a text or call `delivered`, an
e-mail `sent`), nothing is still open, and each text or call of theirs that is only `sent` was
sent more than `wait_s` ago. For those it writes the rows of the next step the family has a
number or address for, in one INSERT ... SELECT per channel (a row already written is skipped by
the deliveries' unique key, so two sweeps cannot write a family's step twice), and hands them to
the workers: each step is a delivery of its own, claimed, sent and recorded like every other.

Nothing escalates once the message's valid_until has passed, nor a message being taken back; a
message that had finished goes back to dispatching (`escalate`) while its next step goes out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from broadcaster.core import contacts, ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.contacts import parse_audience
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Contact, Message
from broadcaster.core.states import REHEARSAL_KINDS, MessageState
from broadcaster.delivery import family_rows, reaching
from broadcaster.delivery.dispatch import Batch, batches

# A finished message whose family is due a next step goes out again (like a recalled call).
REOPENS = (MessageState.SENT, MessageState.PARTIALLY_SENT, MessageState.FAILED)
LIVE = (MessageState.DISPATCHING, *REOPENS)
FAMILIES_PER_SWEEP = 2000  # families escalated per message per sweep; the rest the next time


def steps(district: DistrictConfig, message: Message) -> list[str]:
    """The message's channels in its category's fallback order, when it falls back at all
    (two or more of them chosen): never a follow-up (it reaches whom the original reached, on
    the same channel) or a rehearsal (the test allowlist has no families)."""
    if message.follows_id is not None or message.kind in REHEARSAL_KINDS:
        return []
    chosen = {t.channel for t in message.targets}
    ordered: list[str] = [
        c for c in district.escalation_for(message.category or "").steps if c in chosen
    ]
    return ordered if len(ordered) > 1 else []


def first_steps(
    session: Session, district: DistrictConfig, message: Message, channel: str
) -> ColumnElement[bool] | None:
    """For the expansion: the condition a contact row meets for `channel` to be written now. A
    later step goes only to families the audience gives no number or address for an earlier
    one; None when the channel goes to everyone it reaches."""
    ordered = steps(district, message)
    if channel not in ordered or ordered.index(channel) == 0:
        return None
    earlier = ordered[: ordered.index(channel)]
    return ~_a_row_of(session, district, message, Contact.household, Contact.version, earlier)


def due(session: Session, district: DistrictConfig, now: dt.datetime) -> list[Batch]:
    """Write the next step for every family due one, for each message still escalating;
    returns the batches to enqueue once the session commits."""
    planned: list[Batch] = []
    # FOR NO KEY UPDATE, as the expansion takes it: a worker recording an outcome holds the
    # ledger's lock and then takes a key share of the message (its delivery and ledger rows
    # refer to it); FOR UPDATE would make it wait on this sweep, which waits for the ledger.
    escalating = session.scalars(
        select(Message)
        .where(Message.escalating)
        .order_by(Message.id)
        .with_for_update(key_share=True)
    ).all()
    for message in escalating:
        planned += _escalate(session, district, message, now)
    return planned


def _escalate(
    session: Session, district: DistrictConfig, message: Message, now: dt.datetime
) -> list[Batch]:
    ordered = steps(district, message)
    if (
        not ordered
        or message.state not in LIVE
        or (message.valid_until is not None and message.valid_until <= now)
    ):
        message.escalating = False
        return []
    wait = dt.timedelta(seconds=district.escalation_for(message.category or "").wait_s)
    families = _due_families(session, district, message, ordered, now - wait)
    if not families:
        # Expanded, nothing open and nobody due: every family is reached or has nothing left.
        if not message.expanding and not _any_open(session, message.id, ordered, now - wait):
            message.escalating = False
        return []
    written: list[tuple[int, str]] = []
    waiting = dict(families)  # household -> the step it is on
    for index, channel in enumerate(ordered):
        later = [h for h, on in waiting.items() if on < index]
        if not later:
            continue
        rows = _write_step(session, district, message, channel, later, now)
        written += [(delivery_id, channel) for delivery_id, _ in rows]
        for _, household in rows:
            waiting.pop(str(household), None)
    if not written:
        # The due families have no number or address left for a later step: done with them.
        if not message.expanding and not _any_open(session, message.id, ordered, now - wait):
            message.escalating = False
        return []
    counts = {c: sum(1 for _, ch in written if ch == c) for c in ordered}
    ledger.append(
        session,
        "delivery.escalated",
        {"families": len(families) - len(waiting), "deliveries": counts},
        message_id=message.id,
    )
    if message.state in REOPENS:
        transition(session, message, "escalate", None, district, deliveries=counts)
    return batches(message, written)


def _families(message_id: int, ordered: list[str]) -> Any:
    """The message's sends on its fallback's channels, per family (shared ones under each)."""
    return reaching.family_deliveries(message_id, ordered)


def _due_families(
    session: Session,
    district: DistrictConfig,
    message: Message,
    ordered: list[str],
    waited_since: dt.datetime,
) -> list[tuple[str, int]]:
    """(household, its step) of the families due their next step and with a number or address
    left for one (a family that has had every step it can take is not picked again, so it
    never crowds out the others), at most FAMILIES_PER_SWEEP."""
    fd = _families(message.id, ordered).c
    reached = func.max(case((reaching.reached(fd), 1), else_=0))
    still_open = func.max(case((reaching.still_open(waited_since, fd), 1), else_=0))
    step = func.max(case({c: i for i, c in enumerate(ordered)}, value=fd.channel))
    rows = session.execute(
        select(fd.household, step)
        .where(fd.household.is_not(None))
        .group_by(fd.household)
        .having(
            reached == 0,
            still_open == 0,
            _has_a_later_step(session, district, message, ordered, fd.household, step),
        )
        .order_by(fd.household)
        .limit(FAMILIES_PER_SWEEP)
    ).all()
    return [(str(household), int(on)) for household, on in rows]


def _has_a_later_step(
    session: Session,
    district: DistrictConfig,
    message: Message,
    ordered: list[str],
    household: Any,
    step: Any,
) -> ColumnElement[bool]:
    """The grouped family has, in the message's audience, a number or address some channel
    after `step` reaches."""
    version = message.contacts_version or 0
    return or_(
        *(
            and_(
                step < index,
                _a_row_of(session, district, message, household, version, [channel]),
            )
            for index, channel in enumerate(ordered)
            if index > 0
        )
    )


def _a_row_of(
    session: Session,
    district: DistrictConfig,
    message: Message,
    household: Any,
    version: Any,
    channels: list[str],
) -> ColumnElement[bool]:
    """EXISTS a row of the family `household` in the contact list `version`, in the message's
    audience, that one of `channels` reaches (on an alias: the outer query may be on contacts)."""
    dialect = session.get_bind().dialect.name
    audience = parse_audience(message.audience or "", district)
    kin = aliased(Contact)
    return exists().where(
        kin.version == version,
        kin.household == household,
        audience.where(dialect, kin),
        or_(*(contacts.reachable(c, message.category or "", dialect, kin) for c in channels)),
    )


def _any_open(
    session: Session, message_id: int, ordered: list[str], waited_since: dt.datetime
) -> bool:
    """Whether some family nothing reached yet still has a step going out."""
    fd = _families(message_id, ordered).c
    done = _families(message_id, ordered).c  # its own copy: not correlated with the outer one
    reached_families = (
        select(done.household).where(done.household.is_not(None), reaching.reached(done))
    ).scalar_subquery()
    return (
        session.scalar(
            select(fd.id)
            .where(
                fd.household.is_not(None),
                reaching.still_open(waited_since, fd),
                fd.household.not_in(reached_families),
            )
            .limit(1)
        )
        is not None
    )


def _write_step(
    session: Session,
    district: DistrictConfig,
    message: Message,
    channel: str,
    households: list[str],
    now: dt.datetime,
) -> list[tuple[int, str | None]]:
    """This channel's rows for these families (what it reaches of them in the message's
    contact list): (delivery id, household) of the rows written."""
    audience = parse_audience(message.audience or "", district)
    rows = contacts.recipients(
        session,
        audience,
        message.contacts_version or 0,
        channel,
        message.category or "",
        Contact.household.in_(households),
    )
    return family_rows.write(session, message, rows.subquery(), channel, now)
