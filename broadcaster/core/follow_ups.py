"""What a follow-up acts on: the posts its original published and the phones it reached.

An update replies to the original's post on each account and texts exactly the people the
original texted; a retraction deletes those posts and texts those people a correction. Nobody who
has opted out since is texted again, and nobody new is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from broadcaster.core.config import DistrictConfig
from broadcaster.core.config_fields import FAMILY_CHANNELS, STAFF_CHANNELS
from broadcaster.core.errors import Refused
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Delivery, Message, OptOut
from broadcaster.core.states import SUCCEEDED, DeliveryStatus, MessageState

GONE = (MessageState.RETRACTING, MessageState.RETRACTED)


@dataclass(frozen=True)
class Post:
    channel: str
    account: str
    provider_id: str
    locale: str
    recipient: str  # its delivery's: the account, with the language for an X thread's reply
    in_thread: bool = False  # a reply in the account's X thread, not its first post


def posts(session: Session, original_id: int) -> list[Post]:
    """The original's posts that went out (X, Facebook, web): one per account, and on X the
    replies of its thread; not its texts or calls."""
    rows = session.execute(
        select(
            Delivery.channel,
            Delivery.account,
            Delivery.provider_id,
            Delivery.locale,
            Delivery.recipient,
            Delivery.thread_parent,
        )
        .where(
            Delivery.message_id == original_id,
            Delivery.action == "send",
            Delivery.channel.not_in(FAMILY_CHANNELS + STAFF_CHANNELS),
            Delivery.status.in_(SUCCEEDED),
            Delivery.provider_id.is_not(None),
        )
        .order_by(Delivery.id)
    ).all()
    # cast: the query keeps only the posts that have a provider_id
    return [
        Post(channel, account, cast(str, post_id), locale, recipient, parent is not None)
        for channel, account, post_id, locale, recipient, parent in rows
    ]


def replies(session: Session, message: Message) -> dict[tuple[str, str], str]:
    """(channel, account) -> the original's post a follow-up replies to (on X the first of its
    thread). Refused once the original is being retracted: a reply to a deleted post fails, or
    revives what was withdrawn."""
    if message.follows_id is None:
        return {}
    original = session.get(Message, message.follows_id)
    if original is not None and original.state in GONE:
        raise Refused(
            f"message {original.id} is {original.state}: an update to it would reply to posts "
            "that are being taken down; compose a new message instead"
        )
    return {
        (p.channel, p.account): p.provider_id
        for p in posts(session, message.follows_id)
        if not p.in_thread
    }


def reached(original_id: int, channel: str | None = None) -> Select[*tuple[Any, ...]]:
    """The original's texts, calls or e-mails (or only this channel's) that reached somebody,
    to a number that has not opted out since: (delivery id, recipient, language, household) in
    id order."""
    channels = FAMILY_CHANNELS if channel is None else (channel,)
    return (
        select(Delivery.id, Delivery.recipient, Delivery.locale, Delivery.household)
        .where(
            Delivery.message_id == original_id,
            Delivery.action == "send",
            Delivery.channel.in_(channels),
            Delivery.status.in_(SUCCEEDED),
            Delivery.recipient.not_in(select(OptOut.phone)),
        )
        .order_by(Delivery.id)
    )


def reaches_anyone(session: Session, original_id: int) -> bool:
    """Whether a follow-up of the original would reach anybody."""
    return session.scalar(reached(original_id).limit(1)) is not None


def still_live(session: Session, notice_id: int) -> list[Delivery]:
    """A retraction notice's deletions that are not done: those posts are still up."""
    return list(
        session.scalars(
            select(Delivery)
            .where(
                Delivery.message_id == notice_id,
                Delivery.action == "delete",
                Delivery.status != DeliveryStatus.SENT,
            )
            .order_by(Delivery.id)
        )
    )


def settle_original(session: Session, district: DistrictConfig, notice: Message) -> None:
    """A retraction notice has finished: its original is retracted once every post is down.
    A correction text that could not be delivered does not hold the posts' state open."""
    if notice.follow_kind != "retraction" or notice.follows_id is None:
        return
    original = session.get(Message, notice.follows_id)
    if (
        original is None
        or original.state != MessageState.RETRACTING
        or still_live(session, notice.id)
    ):
        return
    try:
        transition(session, original, "finish_retracted", None, district, notice=notice.id)
    except Refused:
        return  # another worker settled it first


def notice_of(session: Session, original_id: int) -> Message | None:
    """The retraction notice of a message, if it was retracted."""
    return session.scalars(
        select(Message)
        .where(Message.follows_id == original_id, Message.follow_kind == "retraction")
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
