"""Dispatch: turn an approved message into delivery rows, then ring the broker.

One row per social or web account and one per SMS recipient: phone numbers de-duplicated,
opted-out numbers left out, the audience frozen now. Rows are inserted in bulk in the approval's
transaction; the tasks (SMS in batches) are enqueued by an after-commit hook that writing the
rows registers (`release_after_commit`), so every entry point (command line, API, console, beat)
rings the broker only once the rows are committed, and none has to remember to. If the broker
is down the sweep enqueues them later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from broadcaster.core import db, follow_ups, ledger
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.contacts import parse_audience, recipients
from broadcaster.core.errors import Refused
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Delivery, Message, User, utcnow
from broadcaster.core.rehearsals import ensure_allowed, ensure_allowed_phone
from broadcaster.core.states import REHEARSAL_KINDS, DeliveryStatus
from broadcaster.delivery.celery_app import CHANNEL_QUEUE, SEND, URGENT, client_for

SMS_BATCH = 50
# The order deliveries are enqueued in: the web first (it is the reference the posts link to),
# then the posts, then the texts.
CHANNEL_ORDER = ("web", "x", "facebook", "sms")
RELEASED = "broadcaster.released"  # session.info key: what the commit enqueued (Released)
MULTILINGUAL = "mul"  # ISO 639 "multiple languages": one post carrying every language


@dataclass(frozen=True)
class Batch:
    queue: str
    ids: list[int]
    countdown: float = 0.0  # seconds; short backoffs only, the database holds the real schedule


def freeze_recipients(
    session: Session, district: DistrictConfig, message: Message
) -> dict[str, str]:
    """phone -> language: the audience now, or the test allowlist for a rehearsal; a follow-up
    goes to exactly those its original reached."""
    if message.follows_id is not None:
        return follow_ups.recipients(session, message.follows_id)
    if message.kind in REHEARSAL_KINDS:
        return dict.fromkeys(district.test_phones, "en")
    if not message.audience:
        return {}
    return recipients(session, parse_audience(message.audience, district))


def plan(session: Session, district: DistrictConfig, message: Message) -> list[dict[str, Any]]:
    rendered = {(r.channel, r.locale) for r in message.renditions}
    replies = follow_ups.replies(session, message)
    rows: list[dict[str, Any]] = []
    sms_done = False
    for target in message.targets:
        account = next(a for a in district.accounts if a.name == target.account)
        ensure_allowed(district, message.kind, account.name)
        base = {
            "message_id": message.id,
            "channel": target.channel,
            "account": account.name,
            "status": DeliveryStatus.QUEUED,
            "attempts": 0,
            "refers_to": replies.get((target.channel, account.name)),
        }
        if target.channel == "sms":
            if sms_done:  # one text per phone: only the first SMS account sends
                continue
            sms_done = True
            for phone, locale in freeze_recipients(session, district, message).items():
                ensure_allowed_phone(district, message.kind, phone)
                chosen = locale if ("sms", locale) in rendered else "en"
                rows.append({**base, "recipient": phone, "locale": chosen})
        else:
            post_locale = account.post_locale
            if post_locale is not None and (target.channel, post_locale) not in rendered:
                continue  # a Spanish account has nothing to post for an English-only message
            rows.append({**base, "recipient": account.name, "locale": post_locale or MULTILINGUAL})
    return rows


def dispatch(
    session: Session,
    district: DistrictConfig,
    message: Message,
    rows: list[dict[str, Any]] | None = None,
) -> list[Batch]:
    """approved → dispatching, with every delivery row written (the plan's, or a retraction's
    deletions and texts). Their tasks are enqueued once the transaction commits; the batches
    are returned for counting."""
    rows = plan(session, district, message) if rows is None else rows
    transition(session, message, "dispatch", None, district)
    now = utcnow()
    if rows:
        session.execute(
            insert(Delivery), [{**r, "created_at": now, "updated_at": now} for r in rows]
        )
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        action = row.get("action", "send")
        counts[row["channel"] if action == "send" else f"{row['channel']} {action}"] += 1
    ledger.append(
        session,
        "dispatch.planned",
        {"deliveries": dict(counts), "audience": message.audience, "urgent": message.urgent},
        message_id=message.id,
    )
    ids = session.execute(
        select(Delivery.id, Delivery.channel).where(Delivery.message_id == message.id)
    ).all()
    return release_after_commit(session, batches(message, ids))


def batches(message: Message, ids: Iterable[tuple[int, str]]) -> list[Batch]:
    by_channel: dict[str, list[int]] = defaultdict(list)
    for delivery_id, channel in ids:
        by_channel[channel].append(delivery_id)
    out: list[Batch] = []
    for channel in CHANNEL_ORDER:
        queue = URGENT if message.urgent else CHANNEL_QUEUE[channel]
        size = SMS_BATCH if channel == "sms" else 1
        chunk = by_channel.get(channel, [])
        out.extend(Batch(queue, chunk[i : i + size]) for i in range(0, len(chunk), size))
    return out


def enqueue(settings: Settings, planned: list[Batch]) -> None:
    """Ring the doorbell. Called after the rows are committed."""
    app = client_for(settings)
    for batch in planned:
        app.send_task(SEND, args=[batch.ids], queue=batch.queue, countdown=batch.countdown or None)


@dataclass
class Released:
    """What a session's commit handed the broker, to report once the block has ended."""

    batches: list[Batch] = field(default_factory=list)
    warning: str | None = None  # the broker did not take them; the sweep sends them

    @property
    def total(self) -> int:
        return sum(len(batch.ids) for batch in self.batches)


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
        select(Delivery.id, Delivery.channel).where(
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
    return release_after_commit(session, batches(message, [(d.id, d.channel) for d in failed]))
