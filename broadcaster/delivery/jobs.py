"""Jobs: deliveries a worker claims (or the sweep takes back), loaded with the text they carry,
and their outcomes.

A row is claimed (`queued → sending`) under a new claim token with a conditional UPDATE before any
provider call, so no two workers send it (DESIGN.md). Each Job carries the token it was loaded
with; its Result is written only while that claim still holds (recording.py).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from broadcaster.core.languages import direction, heading
from broadcaster.core.models import Delivery, Message, utcnow
from broadcaster.core.states import DeliveryStatus
from broadcaster.delivery.routing import MULTILINGUAL
from broadcaster.delivery.threads import READY
from channel_adapters import Receipt
from channel_adapters.email import html_document, split_rendition


@dataclass
class Job:
    delivery_id: int
    message_id: int
    channel: str
    account: str
    recipient: str
    kind: str
    text: str
    attempt: int
    claimed_at: dt.datetime
    valid_until: dt.datetime | None
    claim: str  # the claim this job acts under; its outcome is written only while it holds
    action: str = "send"  # or "delete": take down the post `refers_to`
    refers_to: str | None = None  # the post a follow-up replies to, or the post to delete
    lookups: int = 0  # provider lookups made to reconcile it (each one backs the next off)
    segments: int = 1  # what the provider meters a send as: a text's SMS segments, else 1
    locale: str = "en"  # the rendition's language (a call is read with a voice for it)
    html: str | None = None  # an e-mail's HTML part (email_html)
    category: str = ""  # the message's template category (an e-mail's List-Unsubscribe)


# What a send attempt came to: a delivery status, or not known yet (the row stays `sending`).
UNCONFIRMED: Final = "unconfirmed"
Settled = DeliveryStatus | Literal["unconfirmed"]


@dataclass
class Result:
    job: Job
    # sent | failed | expired | queued (retry later) | UNCONFIRMED (maybe sent: look it up again)
    status: Settled
    receipt: Receipt | None = None
    error: str | None = None
    raw: dict[str, Any] | None = None
    retry_in: float | None = None
    how: str = "sent"


# The claim a row waits under after its call was made and recorded but not confirmed: marked,
# so that the sweep, finding the text at the provider later, does not count that call again.
AWAITING_LOOKUP = "u-"


def awaiting_lookup_claim() -> str:
    return AWAITING_LOOKUP + uuid.uuid4().hex[:30]


def claim(session: Session, ids: Iterable[int], lease_s: float) -> list[int]:
    """Take the rows that are due, under one new claim token; returns the ids taken. Each job
    carries the token it was loaded with (`Job.claim`), so the token is not returned."""
    token, now = uuid.uuid4().hex, utcnow()
    claimed = session.scalars(
        update(Delivery)
        .where(
            Delivery.id.in_(list(ids)),
            Delivery.status == DeliveryStatus.QUEUED,
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            READY,  # an X thread's reply waits for the tweet it answers (threads.py)
        )
        .values(
            status=DeliveryStatus.SENDING,
            claim=token,
            claimed_at=now,
            lease_until=now + dt.timedelta(seconds=lease_s),
            updated_at=now,
        )
        .returning(Delivery.id)
    ).all()
    return list(claimed)


def text_for(message: Message, channel: str, locale: str) -> str:
    """The rendition for one language, or every language in one post (Facebook, web); an
    e-mail has every language, the family's first (its subject in the family's language)."""
    texts = {r.locale: r.text for r in message.renditions if r.channel == channel}
    if channel == "email":
        subject, body = split_rendition(texts[locale])
        labelled = [
            _labelled(loc, split_rendition(texts[loc])[1].strip())
            for loc in _after(message, texts, locale)
        ]
        return f"Subject: {subject}\n\n" + "\n\n".join([body.strip("\n"), *labelled])
    if locale != MULTILINGUAL:
        return texts[locale]
    ordered = [loc for loc in message.locales if loc in texts]
    if channel == "web":
        return "\n".join(_section(loc, texts[loc]) for loc in ordered)
    parts = [texts[ordered[0]]]
    parts += [_labelled(loc, texts[loc]) for loc in ordered[1:]]
    return "\n\n".join(parts)


def _after(message: Message, texts: dict[str, str], first: str) -> list[str]:
    """The message's other languages that have a rendition, in the message's order."""
    return [loc for loc in message.locales if loc in texts and loc != first]


def _labelled(locale: str, text: str) -> str:
    return f"— {heading(locale)} —\n\n{text}"


def _section(locale: str, html: str) -> str:
    """One language's part of an HTML page; a right-to-left one (Arabic) says so, the others
    take the page's left to right."""
    rtl = ' dir="rtl"' if direction(locale) == "rtl" else ""
    return f'<section lang="{locale}"{rtl}>\n{html}\n</section>'


def email_html(message: Message, locale: str, subject: str) -> str | None:
    """An e-mail's HTML part: the web rendition (autoescaped when rendered) in every language,
    the family's first, titled with the e-mail's subject; None when the message has no web
    rendition (the adapter then makes the part from the text)."""
    pages = {r.locale: r.text for r in message.renditions if r.channel == "web"}
    if not pages:
        return None
    ordered = ([locale] if locale in pages else []) + _after(message, pages, locale)
    sections = "\n".join(_section(loc, pages[loc]) for loc in ordered)
    return html_document(subject, sections)


def segments_for(message: Message, channel: str, locale: str) -> int:
    """A text's SMS segments, as composing measured its rendition; one request otherwise."""
    if channel != "sms":
        return 1
    metrics = next(
        r.metrics for r in message.renditions if (r.channel, r.locale) == (channel, locale)
    )
    return max(1, int(metrics["segments"]))


_JOB_COLUMNS = (
    Delivery.id,
    Delivery.message_id,
    Delivery.channel,
    Delivery.account,
    Delivery.recipient,
    Delivery.locale,
    Delivery.attempts,
    Delivery.claimed_at,
    Delivery.claim,
    Delivery.action,
    Delivery.refers_to,
    Delivery.lookups,
)


def load_jobs(session: Session, ids: list[int]) -> list[Job]:
    # Columns, not ORM objects: a batch's rows are only read, and hydrating them cost more.
    rows = session.execute(
        select(*_JOB_COLUMNS).where(Delivery.id.in_(ids)).order_by(Delivery.id)
    ).all()
    messages = {
        m.id: m
        for m in session.scalars(
            select(Message).where(Message.id.in_({r.message_id for r in rows}))
        )
    }
    return [_job(r, messages[r.message_id]) for r in rows]


def _job(r: Any, message: Message) -> Job:
    sending = r.action == "send"  # a deletion has no text of its own: it acts on its post
    text = text_for(message, r.channel, r.locale) if sending else ""
    html = None
    if sending and r.channel == "email":
        html = email_html(message, r.locale, split_rendition(text)[0] or "")
    return Job(
        delivery_id=r.id,
        message_id=r.message_id,
        channel=r.channel,
        account=r.account,
        recipient=r.recipient,
        kind=message.kind,
        text=text,
        attempt=r.attempts,
        claimed_at=r.claimed_at,  # set on every claimed row
        valid_until=message.valid_until,
        claim=r.claim,  # set on every claimed row
        action=r.action,
        refers_to=r.refers_to,
        lookups=r.lookups,
        segments=segments_for(message, r.channel, r.locale) if sending else 1,
        locale=r.locale,
        category=message.category,
        html=html,
    )
