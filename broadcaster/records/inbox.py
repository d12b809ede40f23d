"""The two-way inbox: a family's text that is not a keyword (STOP, START, HELP) is kept, linked to
the family of its number and to the message it answers, read in the console and by
`broadcaster inbox`, forwarded to the staff rooms that ask for it, kept by the records schedule
and exported with the messages it answers.

A kept text is the `inbound_texts` row the web hook wrote for its MessageSid (so a replay is
kept once), with its account, number, family, message and body filled in. The body is what a
stranger on the internet sent: it is stored as text and never trusted as anything else —
characters no record may hold (XML-forbidden ones, bidi embeddings, overrides and isolates) are
replaced with U+FFFD, anything past BODY_MAX characters (Twilio's own cap on an inbound text) is
cut and the row says so (`truncated`), and every page that shows it escapes it.

Retention (records/retention.py) counts from the text's arrival: its number goes after
`retention.sms_recipient_days` (when set), like the numbers a message texted; its body, number
and family after the years the schedule keeps the category of the message it answers
(`retention.years` when it answers none). The row keeps its MessageSid (a replay stays refused)
and the message it answered. A text is kept past its period while a records hold covers the
message it answers or the day it came.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.contacts import current_version
from broadcaster.core.models import Contact, Delivery, InboundText, Message, User
from broadcaster.core.permissions import may, require
from broadcaster.core.redaction import mask
from broadcaster.core.text_safety import replace_refused
from broadcaster.delivery import inbox_forward

BODY_MAX = 1600  # Twilio's cap on an inbound text; a longer body is cut and marked `truncated`
LISTED = 200  # texts a page or `broadcaster inbox` shows, newest first


def keep(
    session: Session,
    district: DistrictConfig,
    row: InboundText,
    account: str,
    phone: str,
    body: str,
) -> InboundText:
    """Keep the text the hook has just recorded (`row`, new in this transaction): its body made
    safe, its family and the message it answers found; the staff rooms that forward the inbox
    hear of it once this commits."""
    safe = replace_refused(body)
    row.account, row.phone, row.truncated = account, phone, len(safe) > BODY_MAX
    row.body = safe[:BODY_MAX]
    row.household = session.scalar(
        select(Contact.household)
        .where(Contact.version == current_version(session), Contact.phone == phone)
        .order_by(Contact.id)
        .limit(1)
    )
    row.message_id = session.scalar(
        select(Delivery.message_id)
        .where(
            Delivery.recipient == phone,
            Delivery.channel == "sms",
            Delivery.account == account,
            Delivery.sent_at.is_not(None),
            Delivery.sent_at <= row.received_at,
        )
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(1)
    )
    session.flush()
    # No number and no body in the ledger: the row holds them, and retention destroys them there.
    ledger.append(
        session,
        "inbox.kept",
        {
            "text": row.message_sid,
            "account": account,
            "answers": row.message_id,
            "truncated": row.truncated,
        },
        message_id=row.message_id,
    )
    inbox_forward.request(session, district, row)
    return row


def listing(
    session: Session, district: DistrictConfig, actor: User, limit: int = LISTED
) -> list[dict[str, Any]]:
    """The kept texts, newest first, as staff read them: the number masked unless the reader may
    see recipients' numbers (a records officer)."""
    require(actor, "read_inbox", district)
    unmasked = may(actor, "include_recipients", district)
    rows = session.execute(
        select(InboundText, Message.title)
        .outerjoin(Message, Message.id == InboundText.message_id)
        .where(InboundText.body.is_not(None))
        .order_by(InboundText.received_at.desc(), InboundText.message_sid)
        .limit(limit)
    )
    return [view(text, title, unmasked) for text, title in rows]


def view(text: InboundText, title: str | None, unmasked: bool) -> dict[str, Any]:
    phone = text.phone
    return {
        "sid": text.message_sid,
        "received_at": text.received_at.isoformat(),
        "account": text.account,
        "from": phone if unmasked or phone is None else mask(phone),
        "household": text.household,
        "answers": text.message_id,
        "answers_title": title,
        "body": text.body,
        "truncated": text.truncated,
        "forwarded_at": text.forwarded_at.isoformat() if text.forwarded_at else None,
    }


def export_rows(
    session: Session, message_ids: list[int], window: tuple[dt.datetime, dt.datetime] | None
) -> list[dict[str, Any]]:
    """For a records export: the kept texts answering the exported messages, and with a range
    those that came in it; unmasked here (the export's redactor masks numbers and student data
    like every other table's)."""
    answers = InboundText.message_id.in_(message_ids)
    within = (
        (InboundText.received_at >= window[0]) & (InboundText.received_at < window[1])
        if window is not None
        else answers
    )
    rows = session.scalars(
        select(InboundText)
        .where(InboundText.body.is_not(None), or_(answers, within))
        .order_by(InboundText.received_at, InboundText.message_sid)
    )
    return [view(text, None, True) for text in rows]
