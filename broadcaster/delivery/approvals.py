"""Approvers hear the moment a message waits for them: a post to each URL of the district's staff
(apprise) accounts with `notify_approvals`, and a text to each approver with a phone (a verified
approval phone, or `[users.NAME] phone` in the district file) from the SMS account with
`notify_approvals`.

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

The staff-chat post, and the text to a phone from the district file, name the template's title,
the message's id, its author and the console's page for it (BROADCASTER_PUBLIC_URL), and nothing
of the message's content. An approver with a verified approval phone (approver_phones.py) gets
more, to decide by text reply (issue 14, item 5; authoring/text_approval.py): the message's SMS
rendition (or, when it texts nobody, its first public post), the families it reaches, its
channels, the names of its warnings' checks, and "Reply YES 4821 to send, NO 4821 to reject"
with a code issued for that approver and that message. That rendition is what the public would
read: it passed the checks for student data that anything posted publicly must pass (a blocking
finding cannot be submitted), and warnings are named by their check, never quoted. The code is
issued in the same transaction that reads the message, before the text leaves, so a reply cannot
come before it exists; a retried or duplicated notice issues another code for the same approver
and message (either is good, once).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from broadcaster.core import db, ledger
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import ApproverPhone, Message, User
from broadcaster.core.states import MessageState
from broadcaster.core.wording import count
from broadcaster.delivery.approver_phones import issue_code, may_approve, notice_adapter, verified
from broadcaster.delivery.celery_app import NOTIFY_APPROVERS, SOCIAL, URGENT, client_for
from broadcaster.delivery.expansion import audience_size
from broadcaster.delivery.sending import Worker, may_call
from channel_adapters import DeliveryError, Outcome

MAX_RUNS = 5
MAX_RINGS = 3  # times a notice the broker lost is queued (ring_again)
BACKOFF_BASE_S, BACKOFF_CAP_S = 5.0, 120.0
# A notice is short: a text of one or two segments, a chat post of two lines.
NOTICE = "Waiting for your approval: {title} (message {id}) by {author}."
PUBLIC_CHANNELS = ("sms", "x", "facebook", "web")  # what a reply-by-text notice may quote


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
    """The users who may approve `author`'s message and have a phone for its notice (a verified
    approval phone, or one in the district file): never the author (nobody approves their own
    message), never a disabled user."""
    listed = {name for name, entry in district.users.items() if entry.phone}
    with_phone = session.scalars(
        select(User.name)
        .join(ApproverPhone, ApproverPhone.user_id == User.id)
        .where(ApproverPhone.verified_at.is_not(None))
    )
    names = sorted((listed | set(with_phone)) - {author.name})
    users = session.scalars(select(User).where(User.name.in_(names))).all() if names else []
    return sorted(u.name for u in users if may_approve(u, district))


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
        # Each texted approver's number and text; its reply code committed before it is sent.
        texts = {
            key: _text_to(session, worker.district, message, Target.parse(key).recipient, text)
            for key in keys
            if key.startswith("sms:")
        }
    for key in keys:
        target = Target.parse(key)
        to, body = texts.get(key) or (target.recipient, text)
        try:
            if not to:
                raise DeliveryError(Outcome.PERMANENT, "no phone registered")
            adapter = notice_adapter(worker.settings, worker.district, target.account, kind)
            if not may_call(worker, target.account, max_wait=5.0):
                outcome.again[key] = "rate limited locally"
                continue
            adapter.send(body, to=to)
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


def _text_to(
    session: Session, district: DistrictConfig, message: Message, name: str, plain: str
) -> tuple[str, str]:
    """Where an approver's notice is texted and what it says: to a verified approval phone the
    message and a reply code (while text approval is on for them), else the plain notice; to the
    district file's phone, the plain notice. ("", plain) when they have no phone now."""
    user = session.scalar(select(User).where(User.name == name))
    phone = verified(session, user.id) if user is not None else None
    if user is not None and phone is not None:
        if phone.locked_at is None and may_approve(user, district) and user.id != message.author_id:
            code = issue_code(session, message.id, user.id)
            return phone.phone, reply_notice(session, district, message, code)
        return phone.phone, plain
    entry = district.users.get(name)
    return (entry.phone or "", plain) if entry is not None else ("", plain)


def reply_notice(session: Session, district: DistrictConfig, message: Message, code: str) -> str:
    """The notice an approver can answer by text (see the module's docstring for what it may
    quote)."""
    rendition = next(
        (r for c in PUBLIC_CHANNELS for r in message.renditions if r.channel == c),
        None,
    )
    quoted = f"\n\n{rendition.text}\n\n" if rendition is not None else "\n\n"
    families = audience_size(session, district, message)
    warned = [f.check for f in message.findings if f.severity == "warn"]  # checks.WARN
    facts = f"Reaches {count(families, 'family', 'families')} by {', '.join(message.channels)}."
    if warned:
        facts += f" {count(len(warned), 'warning')}: {', '.join(dict.fromkeys(warned))}."
    answer = f"YES {code} OK" if warned else f"YES {code}"
    return (
        f"{district.district.short_name}: approve message {message.id}, {message.title}, "
        f"by {message.author.name}?{quoted}{facts}\nReply {answer} to send, NO {code} to reject."
    )
