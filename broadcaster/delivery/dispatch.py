"""Dispatch: turn an approved message into delivery rows, then ring the broker.

The approval writes one row per social or web account (and a rehearsal's texts to the few test
phones) and releases them at once: the posts and the web alert never wait for the size of the text
audience. The texts are written after it, in pages, by a worker (expansion.py): the approval only
records what to expand (the contact-list version it saw, or the original a follow-up texts
again), so the audience is still frozen at approval. Tasks (SMS in batches) are enqueued by an
after-commit hook that writing the rows registers (`release_after_commit`), so every entry point
(command line, API, console, beat) rings the broker only once the rows are committed, and none
has to remember to. If the broker is down the sweep enqueues them later.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from broadcaster.core import db, follow_ups, ledger
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.config_fields import FAMILY_CHANNELS, STAFF_CHANNELS
from broadcaster.core.contacts import current_version
from broadcaster.core.errors import Refused
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Delivery, Message, User, utcnow
from broadcaster.core.quiet_hours import HELD_CHANNELS, held_for
from broadcaster.core.rehearsals import ensure_allowed, ensure_allowed_recipient
from broadcaster.core.states import REHEARSAL_KINDS, DeliveryStatus
from broadcaster.delivery import routing, threads
from broadcaster.delivery.celery_app import CHANNEL_QUEUE, EXPAND, SEND, URGENT, client_for
from broadcaster.delivery.routing import MULTILINGUAL

SMS_BATCH = 50
# The order deliveries are enqueued in: the web first (it is the reference the posts link to),
# then the posts and the staff rooms, then the texts, the calls and the e-mails.
CHANNEL_ORDER = ("web", "x", "facebook", "apprise", "sms", "voice", "email")
RELEASED = "broadcaster.released"  # session.info key: what the commit enqueued (Released)


@dataclass(frozen=True)
class Batch:
    queue: str
    ids: list[int]  # deliveries to send; for EXPAND, messages whose texts to write
    countdown: float = 0.0  # seconds; short backoffs only, the database holds the real schedule
    task: str = SEND


@dataclass
class Planned:
    """The rows an approval writes now, and whether a worker writes the texts after it."""

    rows: list[dict[str, Any]]
    texts_later: bool = False
    replies: list[routing.Post] = field(default_factory=list)  # X thread replies among the rows


def texts_later(message: Message) -> bool:
    """A follow-up texts whom its original reached, an actual message its audience: both may be
    any size, so a worker writes them after the approval. A rehearsal's test phones are few."""
    return message.follows_id is not None or (
        message.kind not in REHEARSAL_KINDS and bool(message.audience)
    )


def plan(session: Session, district: DistrictConfig, message: Message) -> Planned:
    rendered = {(r.channel, r.locale) for r in message.renditions}
    replies = follow_ups.replies(session, message)
    planned = Planned([])
    phones_done: set[str] = set()
    accounts = {a.name: a for a in district.accounts}
    for target in message.targets:
        account = accounts[target.account]
        ensure_allowed(district, message.kind, account.name)
        base = _row(message, target.channel, account.name, replies)
        if target.channel in FAMILY_CHANNELS:
            if target.channel in phones_done:  # one text (call) per phone: the first account's
                continue
            phones_done.add(target.channel)
            if texts_later(message):
                planned.texts_later = True
                continue
            for recipient in _test_recipients(district, message, target.channel):
                ensure_allowed_recipient(district, message.kind, target.channel, recipient)
                planned.rows.append({**base, "recipient": recipient, "locale": "en"})
        elif target.channel in STAFF_CHANNELS:
            # One post per URL of the account, each its own claimed and recorded delivery;
            # the recipient is the URL's label (the URL is a secret of the workers).
            planned.rows.extend(
                {**base, "recipient": label, "locale": MULTILINGUAL}
                for label in account.staff_labels
            )
    posting = [accounts[t.account] for t in message.targets]
    posting = [a for a in posting if a.channel not in FAMILY_CHANNELS + STAFF_CHANNELS]
    for post in routing.posts(posting, message.locales, rendered):
        row = _row(message, post.channel, post.account, replies)
        if post.after is not None:  # a thread's reply answers its own thread's tweet
            row["refers_to"] = None
            planned.replies.append(post)
        planned.rows.append({**row, "recipient": post.recipient, "locale": post.locale})
    return planned


def _row(
    message: Message, channel: str, account: str, replies: dict[tuple[str, str], str]
) -> dict[str, Any]:
    """What every delivery row of the message on this account starts from."""
    return {
        "message_id": message.id,
        "channel": channel,
        "account": account,
        "status": DeliveryStatus.QUEUED,
        "attempts": 0,
        "refers_to": replies.get((channel, account)),  # a follow-up's post answers the original's
    }


def _test_recipients(district: DistrictConfig, message: Message, channel: str) -> tuple[str, ...]:
    """Whom a rehearsal texts or calls (the test phones) or e-mails (the test addresses)."""
    if message.kind not in REHEARSAL_KINDS:
        return ()
    return district.test_emails if channel == "email" else district.test_phones


def dispatch(
    session: Session,
    district: DistrictConfig,
    message: Message,
    rows: list[dict[str, Any]] | None = None,
    then_texts: bool = False,
) -> list[Batch]:
    """approved → dispatching, with the rows written now (the plan's, or a retraction's
    deletions, `then_texts` when its correction texts follow) and, when it texts an audience, its
    expansion recorded. Their tasks are
    enqueued once the transaction commits; the batches are returned for counting."""
    planned = plan(session, district, message) if rows is None else Planned(rows, then_texts)
    transition(session, message, "dispatch", None, district)
    now = utcnow()
    if planned.rows:
        session.execute(
            insert(Delivery), [{**r, "created_at": now, "updated_at": now} for r in planned.rows]
        )
        threads.link(session, message.id, planned.replies)
    counts: dict[str, int] = defaultdict(int)
    for row in planned.rows:
        action = row.get("action", "send")
        counts[row["channel"] if action == "send" else f"{row['channel']} {action}"] += 1
    _hold_for_quiet_hours(session, district, message, now)
    expand = start_expansion(session, message, now) if planned.texts_later else []
    ledger.append(
        session,
        "dispatch.planned",
        {
            "deliveries": dict(counts),
            "audience": message.audience,
            "urgent": message.urgent,
            **({"texts": _texts_from(message)} if expand else {}),
        },
        message_id=message.id,
    )
    ids = session.execute(
        select(Delivery.id, Delivery.channel).where(
            Delivery.message_id == message.id, threads.READY
        )
    ).all()
    return release_after_commit(session, batches(message, ids) + expand)


def _hold_for_quiet_hours(
    session: Session, district: DistrictConfig, message: Message, now: dt.datetime
) -> None:
    """Going out in quiet hours, a routine message's texts and calls wait for their end
    (quiet_release.py lets them go); its posts, web page and e-mails go now."""
    until = held_for(district.quiet_hours, district.district.time_zone, message, now)
    message.quiet_until = until
    if until is not None:
        held = sorted({t.channel for t in message.targets if t.channel in HELD_CHANNELS})
        ledger.append(
            session,
            "dispatch.quiet_hours",
            {"held": held, "until": until.isoformat()},
            message_id=message.id,
        )


def held_now(message: Message) -> bool:
    """Whether the message's texts and calls wait for its quiet hours to end."""
    return message.quiet_until is not None and message.quiet_until > utcnow()


def start_expansion(session: Session, message: Message, now: dt.datetime) -> list[Batch]:
    """Record what the message's texts go to, frozen now; a worker writes them (expansion.py)."""
    if message.follows_id is None:
        message.contacts_version = current_version(session)
    message.expanding = True
    message.expanded_through = 0
    message.expanded_at = now
    return [expansion_task(message)]


def expansion_task(message: Message) -> Batch:
    """The task that writes the message's next pages of texts: on its texts' own queue."""
    return Batch(URGENT if message.urgent else CHANNEL_QUEUE["sms"], [message.id], task=EXPAND)


def _texts_from(message: Message) -> dict[str, int]:
    if message.follows_id is not None:
        return {"reached_by": message.follows_id}
    return {"contacts_version": message.contacts_version or 0}


def batches(message: Message, ids: Iterable[tuple[int, str]]) -> list[Batch]:
    """The tasks that send these deliveries; none for texts and calls held through quiet
    hours (their rows wait with next_attempt_at: quiet_release enqueues them)."""
    by_channel: dict[str, list[int]] = defaultdict(list)
    for delivery_id, channel in ids:
        by_channel[channel].append(delivery_id)
    out: list[Batch] = []
    held = held_now(message)
    for channel in CHANNEL_ORDER:
        if held and channel in HELD_CHANNELS:
            continue
        queue = URGENT if message.urgent else CHANNEL_QUEUE[channel]
        size = SMS_BATCH if channel in FAMILY_CHANNELS else 1
        chunk = by_channel.get(channel, [])
        out.extend(Batch(queue, chunk[i : i + size]) for i in range(0, len(chunk), size))
    return out


def enqueue(settings: Settings, planned: list[Batch]) -> None:
    """Ring the doorbell. Called after the rows are committed."""
    app = client_for(settings)
    for batch in planned:
        app.send_task(
            batch.task, args=[batch.ids], queue=batch.queue, countdown=batch.countdown or None
        )


@dataclass
class Released:
    """What a session's commit handed the broker, to report once the block has ended."""

    batches: list[Batch] = field(default_factory=list)
    warning: str | None = None  # the broker did not take them; the sweep sends them

    @property
    def total(self) -> int:
        """Deliveries enqueued (texts a worker writes later are not among them yet)."""
        return sum(len(batch.ids) for batch in self.batches if batch.task == SEND)

    @property
    def expanding(self) -> bool:
        """Texts are still to be written, and enqueued, by a worker."""
        return any(batch.task == EXPAND for batch in self.batches)


def release_after_commit(session: Session, planned: list[Batch]) -> list[Batch]:
    """Enqueue `planned` once the session commits (never if it rolls back). The session must
    come from `db.session_scope(url, settings=...)`: the settings name the broker."""
    if not planned:
        return planned
    settings = session.info.get(db.SETTINGS)
    if settings is None:
        raise RuntimeError("a session that dispatches needs session_scope(url, settings=...)")

    def ring() -> None:
        done = session.info.setdefault(RELEASED, Released())
        done.batches += planned
        try:
            enqueue(settings, planned)
        except Exception as exc:  # a broker that is down is not an error: the rows are safe
            done.warning = (
                f"the broker did not take the tasks ({type(exc).__name__}); "
                "a worker's sweep will send them"
            )

    db.after_commit(session, ring)
    return planned


def released(session: Session) -> Released:
    """After the block: what its commit enqueued, and the warning if the broker was down."""
    return session.info.get(RELEASED) or Released()


def retry_failed(
    session: Session, district: DistrictConfig, message: Message, actor: User
) -> list[Batch]:
    """Queue again the deliveries that failed; those that were sent are never touched, and an
    expired text stays expired."""
    failed = session.execute(
        select(Delivery.id, Delivery.channel, Delivery.thread_parent, Delivery.refers_to).where(
            Delivery.message_id == message.id, Delivery.status == DeliveryStatus.FAILED
        )
    ).all()
    if not failed:
        raise Refused(f"message {message.id} has no failed deliveries to send again")
    transition(session, message, "retry", actor, district, deliveries=len(failed))
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_([d.id for d in failed]))
        .values(status=DeliveryStatus.QUEUED, next_attempt_at=None, attempts=0, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    ledger.append(
        session,
        "delivery.requeued",
        {"deliveries": [d.id for d in failed]},
        message_id=message.id,
        actor=actor.name,
    )
    # A thread's reply goes again once the tweet it answers is sent (threads.py).
    ready = [(d.id, d.channel) for d in failed if d.thread_parent is None or d.refers_to]
    return release_after_commit(session, batches(message, ready))
