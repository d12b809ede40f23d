"""A family's reply kept in the inbox (records/inbox.py) is announced in the district's staff
rooms: a post to each URL of every staff (apprise) account with `forward_inbox = true`.

It goes the way an approvers' notice goes (approvals.py, whose Target, Run and back-off it
uses): `request`, in the hook's transaction, writes `inbox.forward_queued` to the ledger naming
each target by account and label (never a URL) and enqueues FORWARD_INBOX once the text is
committed; each run posts to the targets it was given and writes `inbox.forwarded` (sent,
failed, still to retry); what failed for a passing reason is retried by a new task with
back-off, at most MAX_RUNS runs. A copy of the first run that finds the text already forwarded
does nothing.

What is posted: the number masked (+1•••••••0123), the family and the message the text answers,
and the console's link to the inbox — not the text itself. A reply can say anything about a
child (an illness, a custody matter, a name), and a staff room is read by whoever the chat
service lets in and kept by that service under its own retention, beyond the console's
permission check (`read_inbox`), its masking and the records schedule; approvers' notices leave
a message's content out for the same reason. A family's words are also markup to some chat
services (mentions that page a whole room, links, formatting): never posting them leaves none
of that to escape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from sqlalchemy.orm import Session

from broadcaster.core import db, ledger
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import InboundText, Message, utcnow
from broadcaster.core.redaction import mask
from broadcaster.core.states import MessageKind
from broadcaster.delivery.accounts import account_config
from broadcaster.delivery.approvals import Run, Target
from broadcaster.delivery.celery_app import FORWARD_INBOX, SOCIAL, client_for
from broadcaster.delivery.sending import Worker, may_call
from channel_adapters import DeliveryError, Outcome, build


def targets(district: DistrictConfig) -> list[str]:
    return [
        Target("apprise", account.name, label).key()
        for account in district.accounts_for("apprise")
        if account.forward_inbox
        for label in account.staff_labels
    ]


def request(session: Session, district: DistrictConfig, text: InboundText) -> None:
    """In the hook's transaction: record the forward and have it sent once committed."""
    keys = targets(district)
    if not keys:
        return
    ledger.append(
        session,
        "inbox.forward_queued",
        {"text": text.message_sid, "targets": keys},
        message_id=text.message_id,
    )
    settings: Settings | None = session.info.get(db.SETTINGS)
    if settings is None:  # a session without a broker (a test's bare session)
        return
    sid = text.message_sid

    def ring() -> None:
        # A broker that is down loses the forward; the ledger shows it queued and never sent,
        # and the text waits in the console's inbox all the same.
        with contextlib.suppress(Exception):
            client_for(settings).send_task(FORWARD_INBOX, args=[sid, keys, 1], queue=SOCIAL)

    db.after_commit(session, ring)


def post_text(settings: Settings, text: InboundText) -> str:
    """The staff room's post: a title line, then who wrote, about what, and where to read it."""
    family = f"family {text.household}" if text.household else "a number not in the contacts"
    answers = f"message {text.message_id}" if text.message_id else "no message sent to it"
    where = "the console's inbox"
    if settings.public_url:
        where = f"{settings.public_url.rstrip('/')}/console/inbox#text-{text.message_sid}"
    return (
        "A family replied by text\n\n"
        f"From {mask(text.phone or '')} ({family}), answering {answers}. Read it in {where}."
    )


def forward(worker: Worker, sid: str, keys: Iterable[str], run: int) -> Run | None:
    """Post one run's forwards and record the outcome. None when there is nothing to forward
    (retention destroyed it) or a first run finds it forwarded already."""
    url = worker.settings.effective_database_url
    with db.session_scope(url) as session:
        text = session.get(InboundText, sid)
        if text is None or text.body is None or (run == 1 and text.forwarded_at is not None):
            return None
        message = session.get(Message, text.message_id) if text.message_id else None
        kind = message.kind if message is not None else MessageKind.ACTUAL
        post, answers = post_text(worker.settings, text), text.message_id
    outcome = Run(SOCIAL, [], {}, {})
    for key in keys:
        target = Target.parse(key)
        try:
            adapter = build(account_config(worker.settings, worker.district, target.account, kind))
            if not may_call(worker, target.account, max_wait=5.0):
                outcome.again[key] = "rate limited locally"
                continue
            adapter.send(post, to=target.recipient)
        except DeliveryError as exc:
            bucket = outcome.failed if exc.outcome is Outcome.PERMANENT else outcome.again
            bucket[key] = exc.detail
            continue
        except BroadcasterError as exc:  # the account has no credentials here
            outcome.failed[key] = str(exc)
            continue
        outcome.sent.append(key)
    final = outcome.retry_in(run) is None
    with db.session_scope(url) as session:
        if outcome.sent:
            found = session.get(InboundText, sid)
            if found is not None and found.forwarded_at is None:
                found.forwarded_at = utcnow()
        ledger.append(
            session,
            "inbox.forwarded",
            {
                "text": sid,
                "run": run,
                "sent": outcome.sent,
                "failed": {**outcome.failed, **(outcome.again if final else {})},
                "retrying": [] if final else sorted(outcome.again),
            },
            message_id=answers,
        )
    return outcome
