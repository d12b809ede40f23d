"""Approvers hear the moment a message waits for them: a post to each URL of the district's staff
(apprise) accounts with `notify_approvals`, and a text to each approver who registered a phone
(`[users.NAME] phone`) from the SMS account with `notify_approvals`.

Why a Celery task and not delivery rows: a message's deliveries are what it sent to the public
and to staff, and everything that reads them (the status, the tallies that finish a message,
reach, retries, retraction, the records export) counts them as the message's own; a notice to
approvers before approval is none of that. So `request` (called in the submission's transaction)
writes `approval.notice_queued` to the ledger, naming each target by account and label or user
name (never a URL or a phone), and enqueues NOTIFY_APPROVERS once the submission commits; should
the broker lose it (down at that moment), the sweep queues it again (`ring_again`), and a copy
that finds the notice already run does nothing. The task is acknowledged late and rejected when
its worker is lost, so it runs at least once; each run sends to the targets it was given and
writes `approval.notified` (sent, failed with masked errors, still to retry); targets that
failed for a reason that may pass are retried by a new task with back-off, at most MAX_RUNS
runs in all. A worker lost mid-run, or a copy queued again while the first waited for a worker
and run beside it, may send a target twice: a second notice is harmless, a missing one is not.
A notice is not sent once the message no longer waits (approved, rejected, cancelled).

The text names the template's title, the message's id, its author and the console's page for it
(BROADCASTER_PUBLIC_URL), and nothing of the message's content: no student's personal data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core import db, ledger
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import Message, User
from broadcaster.core.permissions import ACTION_ROLES
from broadcaster.core.states import MessageState
from broadcaster.delivery.accounts import account_config
from broadcaster.delivery.celery_app import NOTIFY_APPROVERS, SOCIAL, URGENT, client_for
from broadcaster.delivery.sending import Worker, may_call
from channel_adapters import Adapter, DeliveryError, Outcome, build

MAX_RUNS = 5
MAX_RINGS = 3  # times a notice the broker lost is queued (ring_again)
BACKOFF_BASE_S, BACKOFF_CAP_S = 5.0, 120.0
# A notice is short: a text of one or two segments, a chat post of two lines.
NOTICE = "Waiting for your approval: {title} (message {id}) by {author}."


@dataclass(frozen=True)
class Target:
    """Where one notice goes: an apprise account's URL label, or an approver by name (the
    phone is read from the district file when the text is sent)."""

    channel: str
    account: str
    recipient: str

    def key(self) -> str:
        return f"{self.channel}:{self.account}:{self.recipient}"

    @classmethod
    def parse(cls, key: str) -> Target:
        channel, account, recipient = key.split(":", 2)
        return cls(channel, account, recipient)


def approvers(session: Session, district: DistrictConfig, author: User) -> list[str]:
    """The district file's users who may approve `author`'s message and registered a phone:
    never the author (nobody approves their own message), never a disabled user."""
    allowed = ACTION_ROLES["approve"]
    listed = [
        name
        for name, entry in district.users.items()
        if entry.phone and allowed & set(entry.roles) and name != author.name
    ]
    if not listed:
        return []
    disabled = set(
        session.scalars(
            select(User.name).where(User.name.in_(listed), User.disabled_at.is_not(None))
        )
    )
    return [name for name in listed if name not in disabled]


def targets(session: Session, district: DistrictConfig, message: Message) -> list[Target]:
    out = [
        Target("apprise", account.name, label)
        for account in district.accounts_for("apprise")
        if account.notify_approvals
        for label in account.staff_labels
    ]
    texting = next((a for a in district.accounts_for("sms") if a.notify_approvals), None)
    if texting is not None:
        out += [
            Target("sms", texting.name, name)
            for name in approvers(session, district, message.author)
        ]
    return out


def request(session: Session, district: DistrictConfig, message: Message) -> None:
    """In the submission's transaction: record the notice and have it sent once committed."""
    found = targets(session, district, message)
    if not found:
        return
    keys = [t.key() for t in found]
    ledger.append(session, "approval.notice_queued", {"targets": keys}, message_id=message.id)
    settings: Settings | None = session.info.get(db.SETTINGS)
    if settings is not None:  # else a session without a broker (a test's bare session)
        _ring(session, settings, message, keys)


def ring_again(session: Session, settings: Settings, now: dt.datetime) -> int:
    """For the sweep: the notices the broker lost (it was down when the message was submitted,
    or lost the task). A message still waiting whose last notice was queued `requeue_after`
    ago and never ran (no `approval.notified`) has it queued again, at most MAX_RINGS times in
    all; each time is written to the ledger. Returns how many were queued again."""
    since = (now - dt.timedelta(seconds=settings.requeue_after)).isoformat()
    again = 0
    waiting = session.scalars(
        select(Message).where(Message.state == MessageState.SUBMITTED).order_by(Message.id)
    ).all()
    for message in waiting:
        entries = ledger.entries_for(session, message.id, ("approval.",))
        queued = [(e, body) for e, body in entries if e.event == "approval.notice_queued"]
        if (
            not queued
            or len(queued) >= MAX_RINGS
            or any(e.event == "approval.notified" for e, _ in entries)
            or queued[-1][0].created_at > since
            or queued[-1][1] is None  # purged: nothing to say whom it was for
        ):
            continue
        keys = list(queued[-1][1]["targets"])
        ledger.append(
            session,
            "approval.notice_queued",
            {"targets": keys, "again": "never ran"},
            message_id=message.id,
        )
        _ring(session, settings, message, keys)
        again += 1
    return again


def _ring(session: Session, settings: Settings, message: Message, keys: list[str]) -> None:
    queue = queue_for(message)
    message_id = message.id

    def ring() -> None:
        # A broker that is down loses the notice; the ledger shows it queued, never notified,
        # and the sweep queues it again (ring_again). The submission itself stands.
        with contextlib.suppress(Exception):
            client_for(settings).send_task(
                NOTIFY_APPROVERS, args=[message_id, keys, 1], queue=queue
            )

    db.after_commit(session, ring)


def notice_text(settings: Settings, message: Message) -> str:
    text = NOTICE.format(title=message.title, id=message.id, author=message.author.name)
    if settings.public_url:
        text += f" {settings.public_url.rstrip('/')}/console/messages/{message.id}"
    return text


def queue_for(message: Message) -> str:
    """A message that waits is urgent when it is: its notice goes where its sends would."""
    return URGENT if message.urgent else SOCIAL


def notice_adapter(worker: Worker, account: str, kind: str) -> Adapter:
    """The account's adapter, without a status callback: a notice's text is no delivery, so
    Twilio has no report of it to make to the web hooks (which would refuse it as not ours)."""
    config = account_config(worker.settings, worker.district, account, kind)
    if "status_callback" in config.settings:
        settings = {k: v for k, v in config.settings.items() if k != "status_callback"}
        config = replace(config, settings=settings)
    return build(config)


@dataclass
class Run:
    queue: str
    sent: list[str]
    failed: dict[str, str]  # for good
    again: dict[str, str]  # may pass: retried by the next run

    def retry_in(self, run: int) -> float | None:
        if not self.again or run >= MAX_RUNS:
            return None
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (run - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)


def notify(worker: Worker, message_id: int, keys: Iterable[str], run: int) -> Run | None:
    """Send one run's notices (with the worker's adapters and shared rate limits) and record
    the outcome. None when the message no longer waits for approval."""
    url = worker.settings.effective_database_url
    with db.session_scope(url) as session:
        message = session.get(Message, message_id)
        if message is None or message.state != MessageState.SUBMITTED:
            return None
        if run == 1 and ledger.entries_for(session, message_id, ("approval.notified",)):
            return None  # a copy the sweep queued again while the first was only late: sent
        text = notice_text(worker.settings, message)
        kind = message.kind
        outcome = Run(queue_for(message), [], {}, {})
    for key in keys:
        target = Target.parse(key)
        try:
            to = target.recipient
            if target.channel == "sms":
                entry = worker.district.users.get(target.recipient)
                if entry is None or not entry.phone:
                    raise DeliveryError(Outcome.PERMANENT, "no phone registered")
                to = entry.phone
            adapter = notice_adapter(worker, target.account, kind)
            if not may_call(worker, target.account, max_wait=5.0):
                outcome.again[key] = "rate limited locally"
                continue
            adapter.send(text, to=to)
        except DeliveryError as exc:
            bucket = outcome.failed if exc.outcome is Outcome.PERMANENT else outcome.again
            bucket[key] = exc.detail.replace(to, target.recipient) if to else exc.detail
            continue
        except BroadcasterError as exc:  # the account has no credentials: fix and resubmit
            outcome.failed[key] = str(exc)
            continue
        outcome.sent.append(key)
    final = outcome.retry_in(run) is None
    with db.session_scope(url) as session:
        ledger.append(
            session,
            "approval.notified",
            {
                "run": run,
                "sent": outcome.sent,
                "failed": {**outcome.failed, **(outcome.again if final else {})},
                "retrying": [] if final else sorted(outcome.again),
            },
            message_id=message_id,
        )
    return outcome
