"""Delivery counts without counting deliveries: the sums of `delivery_tallies`, which the
database's triggers append to as deliveries are written (migration 0015), and the folding that
keeps a message's tally rows few.

A count read here is exactly what grouping the deliveries would give in the same snapshot: the
triggers write in the transaction that changes the rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from broadcaster.core.models import DeliveryTally as T

# A message with more tally rows than this has them folded into one per key by the next sweep.
FOLD_AFTER = 32

Key = tuple[str, str, str]  # channel, action, status


def of_message(session: Session, message_id: int) -> dict[Key, int]:
    """A message's deliveries per (channel, action, status), the keys with none left out."""
    rows = session.execute(
        select(T.channel, T.action, T.status, func.sum(T.n))
        .where(T.message_id == message_id)
        .group_by(T.channel, T.action, T.status)
    ).all()
    return {(channel, action, status): n for channel, action, status, n in rows if n}


def by_status(session: Session, message_id: int) -> dict[str, int]:
    """A message's deliveries per status, whatever their channel or action."""
    counts: Counter[str] = Counter()
    for (_, _, status), n in of_message(session, message_id).items():
        counts[status] += n
    return dict(counts)


def in_statuses(session: Session, statuses: Collection[str]) -> dict[tuple[int, str, str], int]:
    """Every message's deliveries in these statuses: (message, channel, status) -> count."""
    rows = session.execute(
        select(T.message_id, T.channel, T.status, func.sum(T.n))
        .where(T.status.in_(statuses))
        .group_by(T.message_id, T.channel, T.status)
        .having(func.sum(T.n) != 0)
        .order_by(T.message_id, T.channel)
    ).all()
    return {(message_id, channel, status): n for message_id, channel, status, n in rows}


def fold(session: Session) -> int:
    """Fold each message that has more than FOLD_AFTER tally rows into one row per key (none for
    a key that sums to 0); return how many messages were folded.

    The rows are deleted and summed in one statement (DELETE ... RETURNING): a change another
    transaction has not committed yet is not deleted and keeps counting, so a fold never loses
    or double-counts one, whatever runs beside it.
    """
    crowded = session.scalars(
        select(T.message_id).group_by(T.message_id).having(func.count() > FOLD_AFTER)
    ).all()
    for message_id in crowded:
        folded = delete(T).where(T.message_id == message_id)
        gone = session.execute(folded.returning(T.channel, T.action, T.status, T.n)).all()
        sums: Counter[Key] = Counter()
        for channel, action, status, n in gone:
            sums[channel, action, status] += n
        kept = [
            {"message_id": message_id, "channel": c, "action": a, "status": s, "n": n}
            for (c, a, s), n in sums.items()
            if n
        ]
        if kept:
            session.execute(insert(T), kept)
    return len(crowded)
