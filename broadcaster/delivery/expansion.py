"""Expansion: write an approved message's texts in pages, after its posts have gone out.

The approval records what the texts go to (dispatch.start_expansion): the contact-list version it
saw, or, for a follow-up, the original whose recipients it texts again. A worker then walks that
source in pages by id (keyset: `id > cursor ORDER BY id LIMIT page`), and each page is one
transaction: its rows inserted (a phone already written is skipped by the deliveries' unique key,
so a phone on two contact rows is texted once, in its first row's language), the cursor advanced,
and the page's batches enqueued once that commits. A crash between pages loses nothing and
duplicates nothing: the next task (or the sweep, which re-enqueues an expansion that stopped
making progress: `stalled`) resumes after the committed cursor. A page is written by the database
itself (INSERT ... SELECT): no contact row passes through the worker, only the new ids.

A number that opts out before its page is written is left out: stricter than a snapshot taken at
approval, as the law wants. The message does not finish while it is expanding
(recording.finish_if_done); the last page ends the expansion and finishes it if nothing is open.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, cast

from sqlalchemy import Select, Table, func, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.core import contacts, follow_ups, ledger
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.config_fields import FAMILY_CHANNELS
from broadcaster.core.contacts import parse_audience
from broadcaster.core.db import session_scope
from broadcaster.core.models import Delivery, Message, utcnow
from broadcaster.core.states import REHEARSAL_KINDS, MessageState
from broadcaster.delivery import escalation, family_rows, tallies
from broadcaster.delivery.dispatch import (
    Batch,
    batches,
    expansion_task,
    release_after_commit,
    texts_later,
)
from broadcaster.delivery.recording import finish_if_done

PAGE = 1000  # rows read and written per transaction
_DELIVERIES = cast(Table, Delivery.__table__)  # written by Core: no ORM objects for a page
# A task expands for at most this long, then hands on to a new task (well within the broker's
# visibility timeout, after which it would hand the running task out again).
BUDGET_S = 60.0


def audience_reach(
    session: Session,
    district: DistrictConfig,
    message: Message,
    channels: list[str] | None = None,
) -> contacts.Reach:
    """Whom the message would reach now (families; numbers and addresses per channel and
    language), counted by the database: the preview's count and send-time plan, and the check
    that an audience reaches somebody. `channels` for a message not composed yet."""
    if channels is None:
        channels = _family_channels(message)
    channels = [c for c in FAMILY_CHANNELS if c in channels]
    if message.follows_id is not None:
        return _followed(session, message.follows_id, channels)
    if message.kind in REHEARSAL_KINDS:
        # The test allowlist has no households: each number or address is its own "family", a
        # number texted and called once (as the reach report groups a rehearsal's rows).
        listed = {
            c: len(district.test_emails if c == "email" else district.test_phones) for c in channels
        }
        phoned = any(c != "email" for c in channels)
        families = (len(district.test_phones) if phoned else 0) + listed.get("email", 0)
        return contacts.Reach(families, {c: {"en": n} for c, n in listed.items() if n})
    if not texts_later(message):
        return contacts.Reach(0, {})
    audience = parse_audience(message.audience or "", district)
    version = contacts.current_version(session)
    return contacts.reach(session, audience, version, channels, message.category or "")


def _followed(session: Session, original_id: int, channels: list[str]) -> contacts.Reach:
    """A follow-up reaches, on each channel, whom its original reached on it."""
    by_channel = {
        channel: counts
        for channel in channels
        if (counts := contacts.first_languages(session, follow_ups.reached(original_id, channel)))
    }
    reached = follow_ups.reached(original_id).subquery()
    families = session.scalar(select(func.count(func.distinct(reached.c.household)))) or 0
    return contacts.Reach(families, by_channel)


def audience_size(session: Session, district: DistrictConfig, message: Message) -> int:
    """The families the message would reach now."""
    return audience_reach(session, district, message).families


def expand(
    settings: Settings, district: DistrictConfig, message_ids: list[int], page: int = PAGE
) -> list[Batch]:
    """Write these messages' texts page by page, each page enqueued as it commits; returns the
    tasks that carry on with those that ran out of time."""
    deadline = time.monotonic() + BUDGET_S
    carry_on: list[Batch] = []
    for message_id in message_ids:
        more = True
        while more and time.monotonic() < deadline:
            with session_scope(settings.effective_database_url, settings=settings) as session:
                more = expand_page(session, district, message_id, page)
        if more:
            with session_scope(settings.effective_database_url) as session:
                carry_on.append(expansion_task(session.get_one(Message, message_id)))
            continue
        with session_scope(settings.effective_database_url, settings=settings) as session:
            # After the last page's commit, so that a worker that settled the last open row
            # meanwhile, and found the message still expanding, is not left unanswered.
            finish_if_done(session, district, message_id)
            contacts.drop_unused_versions(session)
    return carry_on


def expand_page(session: Session, district: DistrictConfig, message_id: int, page: int) -> bool:
    """Write the next page of the message's texts; False once there is nothing more to write."""
    # One page at a time per message. FOR NO KEY UPDATE: rows that only refer to the message
    # (a ledger entry, a delivery) still take their key share while a page holds this, so a
    # worker holding the ledger's lock never waits on it.
    message = session.scalars(
        select(Message).where(Message.id == message_id).with_for_update(key_share=True)
    ).one_or_none()
    if message is None or not message.expanding:
        return False  # done already, by another task the sweep or the broker started
    after = message.expanded_through or 0
    now = utcnow()
    read, last, written = _write_page(session, district, message, after, page, now)
    done = read < page
    message.expanded_through = last if last is not None else after
    message.expanded_at = now
    if after == 0 and escalation.steps(district, message):
        message.escalating = True  # the sweep escalates families from the first page on
    if done:
        message.expanding = False
        counts = tallies.of_message(session, message.id)
        written_by_channel = {
            wanted: sum(n for (channel, _, _), n in counts.items() if channel == wanted)
            for wanted in _family_channels(message)
        }
        ledger.append(session, "dispatch.expanded", written_by_channel, message_id=message.id)
    release_after_commit(session, batches(message, written))
    return not done


def stalled(session: Session, now: dt.datetime, after_s: float) -> list[Batch]:
    """Expansions that made no progress for `after_s` (their task was lost with a worker):
    enqueue them again; they resume after their committed cursor."""
    since = now - dt.timedelta(seconds=after_s)
    lost = session.scalars(
        select(Message).where(
            Message.state == MessageState.DISPATCHING,
            Message.expanding,
            or_(Message.expanded_at.is_(None), Message.expanded_at < since),
        )
    ).all()
    if not lost:
        return []
    session.execute(
        update(Message)
        .where(Message.id.in_([m.id for m in lost]))
        .values(expanded_at=now)
        .execution_options(synchronize_session=False)
    )
    return [expansion_task(message) for message in lost]


def _pages(session: Session, district: DistrictConfig, message: Message) -> Select[int]:
    """The ids an expansion pages through: the original's deliveries for a follow-up, else the
    audience's contact rows."""
    if message.follows_id is not None:
        return follow_ups.reached(message.follows_id).with_only_columns(Delivery.id)
    audience = parse_audience(message.audience or "", district)
    return contacts.audience_rows(session, audience, message.contacts_version or 0)


def _source(
    session: Session, district: DistrictConfig, message: Message, channel: str
) -> Select[*tuple[Any, ...]]:
    """(source id, recipient, language, household) rows of one channel. With a fallback between
    channels, a later one only for families an earlier one cannot reach (the sweep escalates
    the others: escalation.py)."""
    if message.follows_id is not None:
        return follow_ups.reached(message.follows_id, channel)
    audience = parse_audience(message.audience or "", district)
    later = escalation.first_steps(session, district, message, channel)
    return contacts.recipients(
        session,
        audience,
        message.contacts_version or 0,
        channel,
        message.category or "",
        *(() if later is None else (later,)),
    )


def _family_channels(message: Message) -> list[str]:
    """The message's channels that reach each family of its audience: texts, calls, e-mails."""
    targeted = {t.channel for t in message.targets}
    return [channel for channel in FAMILY_CHANNELS if channel in targeted]


def _write_page(
    session: Session,
    district: DistrictConfig,
    message: Message,
    after: int,
    page: int,
    now: dt.datetime,
) -> tuple[int, int | None, list[tuple[int, str]]]:
    """Write the texts, calls and e-mails of the next `page` source rows after id `after`, in
    the database (no row comes through this process): one per number or address not written
    yet, in its first row's language (English where the message lacks it). Returns the rows
    read, the last one's id and the (id, channel) of the rows written."""
    ids = _pages(session, district, message)
    key = ids.selected_columns[0]
    bounds = ids.where(key > after).order_by(key).limit(page).subquery()
    read, last = session.execute(select(func.count(), func.max(bounds.c[0]))).one()
    if not read:
        return 0, None, []
    written: list[tuple[int, str]] = []
    for channel in _family_channels(message):
        rows = _source(session, district, message, channel).subquery()
        in_page = select(rows).where(rows.c[0] > after, rows.c[0] <= last).cte(f"page_{channel}")
        rows_written = family_rows.write(session, message, in_page, channel, now)
        written += [(delivery_id, channel) for delivery_id, _ in rows_written]
    return read, last, written
