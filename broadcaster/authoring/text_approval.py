"""Approval by text reply (issue 14, item 5): "YES 4821" from an approver's verified phone
approves the message the code was texted for, as that approver; "NO 4821" rejects it.

The approval is the CLI's own (messages.approve_and_dispatch, messages.reject): the two-person
rule, the role checks and the warnings all apply, and the ledger's approval entry says the basis
was "text reply". A message with warnings needs "YES 4821 OK".

A reply is read on its folded form (sms_keywords.fold: case, full-width forms, invisible
characters, surrounding punctuation) and must be exactly YES or NO, the code, and for YES an
optional OK; digits of any script count. Anything else, and any text from a number that is no
verified approval phone, is not a reply here (None: the web hook carries on with it).

A reply whose code is not one of that approver's live codes (wrong, expired, used, another
approver's, the author's own phone) is refused with one answer that does not say which part was
wrong, counted, and written to the ledger; WRONG_REPLIES_MAX in a row turn text approval off
for that approver until an admin turns it on again (approver_phones.unlock). A decision resets
the count. Each reply is counted before its code is checked, in one statement (_take_try), so
replies that race one another get no more guesses. Replays of the same MessageSid never reach
here (the hook answers them empty).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from broadcaster.authoring import messages
from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import ApprovalCode, ApproverPhone, Message, User, utcnow
from broadcaster.core.redaction import mask
from broadcaster.core.sms_keywords import fold
from broadcaster.core.states import MessageState
from broadcaster.core.wording import count
from broadcaster.delivery import approver_phones
from broadcaster.delivery.approver_phones import WRONG_REPLIES_MAX

BASIS = "text reply"
REJECT_REASON = "rejected by text reply"
MAX_REPLY = 40  # a longer text is no reply
REPLY = re.compile(r"(yes|no) (\d{1,12})( ok)?")
REFUSED = "Not accepted: that reply does not match an approval request sent to this phone."
LOCKED = (
    "Not accepted: approval by text is turned off for this phone after wrong replies. "
    "An admin can turn it back on."
)


@dataclass(frozen=True)
class Reply:
    approve: bool
    code: str
    ok: bool  # "OK": the approver read the warnings


def parse(body: str) -> Reply | None:
    if len(body) > MAX_REPLY:
        return None
    found = REPLY.fullmatch(fold(body))
    if found is None:
        return None
    code = "".join(str(unicodedata.digit(c)) for c in found[2])
    return Reply(found[1] == "yes", code, bool(found[3]))


def answer(
    session: Session,
    district: DistrictConfig,
    phone: str,
    body: str,
    now: dt.datetime | None = None,
) -> str | None:
    """The answer to an approver's reply, having acted on it; None when this is no reply to an
    approval request (not the form, or not from a verified approval phone)."""
    reply = parse(body)
    found = approver_phones.owner(session, phone) if reply is not None else None
    if reply is None or found is None:
        return None
    user, row = found
    now = now or utcnow()
    if not _take_try(session, row):
        _refused(session, user, row, "text approval is turned off")
        return LOCKED
    live = [
        c
        for c in approver_phones.live_codes(session, user.id, now)
        if approver_phones.matches(c.code_hash, reply.code)
    ]
    if len(live) != 1:  # none, or (never issued so) two: refuse rather than guess
        return _wrong(session, user, row, now)
    row.wrong_replies -= 1  # the code is right: this reply was no guess
    code = live[0]
    message = session.get_one(Message, code.message_id)
    if message.state != MessageState.SUBMITTED:  # decided another way (the CLI, the console)
        return f"Message {message.id} no longer waits for approval: it is {message.state}."
    if reply.approve and messages.warnings(message) and not reply.ok:
        warned = count(len(messages.warnings(message)), "warning")
        return (
            f"Message {message.id} has {warned}. To send it anyway, reply "
            f"YES {reply.code} OK; to reject it, NO {reply.code}."
        )
    return _decide(session, district, message, user, row, code, reply, now)


def _decide(
    session: Session,
    district: DistrictConfig,
    message: Message,
    user: User,
    row: ApproverPhone,
    code: ApprovalCode,
    reply: Reply,
    now: dt.datetime,
) -> str:
    try:
        with session.begin_nested():  # a refusal undoes the decision, not the hook's records
            if reply.approve:
                messages.approve_and_dispatch(
                    session, district, message, user, ack_warnings=reply.ok, basis=BASIS
                )
            else:
                messages.reject(session, district, message, user, REJECT_REASON, basis=BASIS)
    except BroadcasterError as exc:  # the rules refused this approver: say why
        return f"Message {message.id} was not {'approved' if reply.approve else 'rejected'}: {exc}"
    # Every code of this message dies with the decision; this one is marked used.
    session.execute(
        update(ApprovalCode)
        .where(ApprovalCode.message_id == message.id, ApprovalCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    row.wrong_replies = 0
    if not reply.approve:
        return f"Rejected: message {message.id}, {message.title}. The author will see why."
    if message.state == MessageState.SCHEDULED:
        return f"Approved: message {message.id}, {message.title}, is scheduled."
    return f"Approved: message {message.id}, {message.title}, is going out now."


def _take_try(session: Session, row: ApproverPhone) -> bool:
    """Count the reply as a wrong guess before its code is checked, in one statement that holds
    the approver's row until the hook's transaction ends: replies that race one another cannot
    guess more than WRONG_REPLIES_MAX times between them. False when text approval is off."""
    # cast: an UPDATE's result is a CursorResult, which counts the rows it changed
    taken = cast(
        "CursorResult[Any]",
        session.execute(
            update(ApproverPhone)
            .where(ApproverPhone.user_id == row.user_id, ApproverPhone.locked_at.is_(None))
            .values(wrong_replies=ApproverPhone.wrong_replies + 1)
            .execution_options(synchronize_session=False)
        ),
    )
    session.refresh(row)
    return taken.rowcount == 1


def _wrong(session: Session, user: User, row: ApproverPhone, now: dt.datetime) -> str:
    _refused(session, user, row, "no live code of theirs matched")
    if row.wrong_replies < WRONG_REPLIES_MAX:
        return REFUSED
    row.locked_at = now
    ledger.append(
        session,
        "text_approval.disabled",
        {"name": user.name, "phone": mask(row.phone), "wrong_replies": row.wrong_replies},
    )
    return LOCKED


def _refused(session: Session, user: User, row: ApproverPhone, why: str) -> None:
    ledger.append(
        session,
        "text_approval.refused",
        {"name": user.name, "phone": mask(row.phone), "why": why, "wrong": row.wrong_replies},
    )
