"""Corrections: the update that follows a message, and the retraction that takes one down.

An update is a message of its own, from any template, linked to its original (`follows_id`). When
it is dispatched its X post replies to the original's, its Facebook post links to the original's,
its web alert is a CAP Update of the original's, and its texts go to exactly the phones the
original reached (follow_ups.py). It is approved like any message, except that an incident
commander may send an update to a message from a pre-approved template at once, when the
update's own template is pre-approved too.

A retraction moves the original to `retracting` and writes its notice: a message from the
`retraction_notice` template whose deliveries delete each of the original's posts (X, every tweet
of its thread included, Facebook, and the web alert, which becomes a CAP Cancel) and text the
notice to the phones the original reached. They are claimed, retried and recorded like every
delivery; the original is `retracted` once every post is down (follow_ups.settle_original), and
`retry` sends again what failed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broadcaster.authoring import messages
from broadcaster.authoring.catalog import Catalog
from broadcaster.core import follow_ups, ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import REASON, Refused
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Delivery, Message, User, utcnow
from broadcaster.core.permissions import require
from broadcaster.core.quiet_hours import HELD_CHANNELS
from broadcaster.core.states import DeliveryStatus, MessageState
from broadcaster.core.text_safety import check_reason
from broadcaster.delivery import checkpointing, scheduling
from broadcaster.delivery.dispatch import Batch, dispatch, retry_failed
from broadcaster.delivery.recording import finish_if_done

NOTICE = "retraction_notice"
UPDATABLE = (MessageState.SENT, MessageState.PARTIALLY_SENT)


def update(
    session: Session,
    district: DistrictConfig,
    catalog: Catalog,
    author: User,
    original: Message,
    request: messages.Request,
    at_once: bool = False,
) -> tuple[Message, list[Batch]]:
    """A follow-up draft of `original`, or with `at_once` (an incident commander, a pre-approved
    original and template) approved and dispatched now (enqueued when the transaction
    commits). By default it keeps the original's channels and languages."""
    require(author, "compose", district)
    if original.state not in UPDATABLE:
        raise Refused(
            f"message {original.id} is {original.state.replace('_', ' ')}; an update follows a "
            "message that went out (sent or partially sent)"
        )
    if at_once:
        require(author, "approve_pre_approved", district)
        if not original.pre_approved:
            raise Refused(
                f"message {original.id} was not sent from a pre-approved template: "
                "submit the update for approval"
            )
    template = catalog.get(request.template)
    request = dataclasses.replace(
        request,
        kind=original.kind,  # an update to a rehearsal is a rehearsal
        audience=None,  # it texts the original's recipients
        channels=request.channels
        or [c for c in original.channels if c in template.channels]
        or None,
        locales=request.locales or [loc for loc in original.locales if loc in template.locales],
    )
    follow_up = messages.build(
        session, district, catalog, author, request, follows=original, follow_kind="update"
    )
    if not at_once:
        return follow_up, []
    messages.approve_pre_approved(session, district, catalog, follow_up, author)
    follow_up.urgent = True
    return follow_up, scheduling.dispatch_or_schedule(session, district, follow_up)


def retract(
    session: Session,
    district: DistrictConfig,
    catalog: Catalog,
    original: Message,
    actor: User,
    reason: str,
) -> tuple[Message, list[Batch]]:
    """original → retracting, and its notice approved and dispatched: one deletion per post
    that went out, enqueued when the transaction commits, and one correction text per phone the
    original reached, written and enqueued by a worker after it. Returns the notice and the
    batches, for counting."""
    reason = check_reason("reason", reason, "a retraction needs a reason", REASON)
    require(actor, "retract", district)
    _withdraw_held(session, district, original)
    transition(session, original, "retract", actor, district, reason=reason)
    template = catalog.get(NOTICE)
    request = messages.Request(
        template=NOTICE,
        values={"sent_at": _sent_at(session, district, original)},
        channels=["sms"],
        locales=[loc for loc in original.locales if loc in template.locales] or None,
        kind=original.kind,
    )
    notice = messages.build(
        session, district, catalog, actor, request, follows=original, follow_kind="retraction"
    )
    notice.urgent = True  # what was withdrawn is live until it is down
    messages.approve_retraction_notice(session, district, notice, actor, reason)
    rows = _deletions(notice, original, session)
    # The correction texts go to whom the original reached: a worker writes them in pages
    # (delivery/expansion.py), after the deletions have gone out.
    texts = any(t.channel == "sms" for t in notice.targets) and follow_ups.reaches_anyone(
        session, original.id
    )
    planned = dispatch(session, district, notice, rows, then_texts=texts)
    if not rows and not texts:  # nothing went out anywhere: nothing to take down
        transition(session, notice, "finish_sent", None, district, deliveries={})
        follow_ups.settle_original(session, district, notice)
        checkpointing.sign_after_commit(session, district)
    return notice, planned


def _withdraw_held(session: Session, district: DistrictConfig, original: Message) -> None:
    """A message whose texts and calls wait for quiet hours to end went out everywhere else:
    taking it back expires what is held (nobody got it), which finishes the message, so it is
    retracted like any other. One still writing its rows, or with sends in flight, is not
    finished yet: the retraction is refused as for any message still going out."""
    if original.state != MessageState.DISPATCHING or original.quiet_until is None:
        return
    if original.expanding:
        return
    expired = session.execute(
        sa.update(Delivery)
        .where(
            Delivery.message_id == original.id,
            Delivery.channel.in_(HELD_CHANNELS),
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .values(
            status=DeliveryStatus.EXPIRED,
            error="withdrawn before quiet hours ended: never sent",
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    original.quiet_until = None
    ledger.append(
        session,
        "delivery.withdrawn_held",
        {"expired": expired.rowcount},  # type: ignore[attr-defined]  # an UPDATE's CursorResult
        message_id=original.id,
    )
    finish_if_done(session, district, original.id)
    session.refresh(original)


def retry(
    session: Session, district: DistrictConfig, message: Message, actor: User
) -> tuple[Message, list[Batch]]:
    """`retry` on a message being retracted finishes the retraction: its notice's failed
    deletions and texts go again. Otherwise the message's own failed deliveries do."""
    target = message
    if message.state == MessageState.RETRACTING:
        notice = follow_ups.notice_of(session, message.id)
        if notice is not None:
            target = notice
    return target, retry_failed(session, district, target, actor)


def _base(notice: Message, channel: str, account: str) -> dict:
    return {
        "message_id": notice.id,
        "channel": channel,
        "account": account,
        "status": DeliveryStatus.QUEUED,
        "attempts": 0,
    }


def _deletions(notice: Message, original: Message, session: Session) -> list[dict]:
    return [
        {
            **_base(notice, post.channel, post.account),
            "recipient": post.recipient,  # an X thread's tweets each have their own
            "locale": post.locale,
            "action": "delete",
            "refers_to": post.provider_id,
        }
        for post in follow_ups.posts(session, original.id)
    ]


def _sent_at(session: Session, district: DistrictConfig, original: Message) -> str:
    """When the original first went out, in district time, as the notice's variable."""
    first = session.scalar(
        select(func.min(Delivery.sent_at)).where(Delivery.message_id == original.id)
    )
    moment: dt.datetime = first or original.updated_at
    local = moment.astimezone(ZoneInfo(district.district.time_zone))
    return local.strftime("%Y-%m-%dT%H:%M")
