"""Delivery reports from providers (Twilio's status callbacks for texts and calls), applied to
the delivery rows.

A report is applied only to a delivery sent through the account that signed it: the web hook
says who verified the signature (a `Signer`: the AccountSid, and whether with the sandbox's
public token), and that must be who the delivery's account sends as for its message's kind. A
report for another account's text changes nothing.

A report can arrive before the worker has recorded the provider's id for that delivery (the
provider answers the send, then reports within a second, while the worker is still sending the
rest of its batch). Such a report is held, not dropped, with its signer, and applied when the id
is recorded (by the worker right after recording, and by the periodic sweep as the safety net)
under the same rule.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broadcaster.core import ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Delivery, HeldCallback, Message, utcnow
from broadcaster.core.states import DeliveryStatus, MessageState
from broadcaster.delivery.accounts import Signer, twilio_signer

log = logging.getLogger(__name__)

# Twilio's order: queued < sent < delivered | undelivered | failed. A report only moves a
# delivery forward, and nothing moves it out of a final state: a late (or forged) "failed" after
# "delivered" would let `retry` text the parent again.
# The delivery's channel -> its status now -> the reported status -> its status after. A call
# that ended `completed` was answered, by a person or a voicemail (which heard all of it: the
# adapter waits for the beep); busy, no answer, failed or cancelled reached nobody.
FORWARD: dict[str, dict[str, dict[str, str]]] = {
    "sms": {"sent": {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}},
    "voice": {
        "sent": {
            "completed": "delivered",
            "busy": "failed",
            "no-answer": "failed",
            "failed": "failed",
            "canceled": "failed",
        }
    },
}
# Only these reports can ever change a delivery; the rest (queued, ringing, in-progress...) are
# not kept.
FINAL_REPORTS = {
    channel: frozenset(status for moves in table.values() for status in moves)
    for channel, table in FORWARD.items()
}
# A call that ended so is placed again later, while its account's recalls last.
RECALLED = frozenset({"busy", "no-answer"})
# A message whose call is placed again is going out again (or still is); not one that is being
# taken back.
REOPENS = (MessageState.SENT, MessageState.PARTIALLY_SENT, MessageState.FAILED)
# Why a call reached nobody, as the delivery's error says it.
CALL_ENDED = {
    "busy": "the line was busy",
    "no-answer": "no answer",
    "failed": "the call failed",
    "canceled": "the call was cancelled",
}
# Reports for ids no delivery ever gets (another system on the same account) are let go.
HOLD_FOR = dt.timedelta(days=2)


@dataclass(frozen=True)
class Reported:
    ours: bool  # False: the id is another account's, and nothing was changed
    delivery: tuple[str, int] | None = None  # (account, id) of the delivery it applied to now


def report(
    session: Session,
    district: DistrictConfig,
    signer: Signer,
    provider_id: str,
    status: str,
    error_code: str | None,
    channel: str = "sms",
) -> Reported:
    """Apply one report (on a text, or on a call for channel "voice") now, or hold it until its
    delivery's provider id is recorded."""
    if status not in FINAL_REPORTS[channel]:
        return Reported(ours=True)
    row = session.execute(
        select(Delivery, Message.kind)
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.provider_id == provider_id, Delivery.channel == channel)
        .with_for_update(of=Delivery)
    ).first()
    if row is None:
        session.add(
            HeldCallback(
                provider_id=provider_id,
                status=status,
                error_code=error_code,
                account_sid=signer.account_sid,
                sandbox=signer.sandbox,
            )
        )
        return Reported(ours=True)
    delivery, kind = row
    if not _sent_as(district, delivery, kind, signer):
        return Reported(ours=False)
    _apply(session, district, delivery, status, error_code)
    return Reported(ours=True, delivery=(delivery.account, delivery.id))


def apply_held(
    session: Session, district: DistrictConfig, provider_ids: list[str] | None = None
) -> int:
    """Apply held reports whose delivery is now known (only for these ids, when given); a held
    report signed by another account than the delivery's is dropped."""
    query = (
        select(HeldCallback, Delivery, Message.kind)
        .join(Delivery, Delivery.provider_id == HeldCallback.provider_id)
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.channel.in_(FORWARD))
    )
    if provider_ids is not None:
        if not provider_ids:
            return 0
        query = query.where(HeldCallback.provider_id.in_(provider_ids))
    rows = session.execute(
        query.order_by(HeldCallback.id).with_for_update(of=[HeldCallback, Delivery])
    ).all()
    applied = 0
    for held, delivery, kind in rows:
        signer = Signer(held.account_sid or "", held.sandbox)
        if held.account_sid and _sent_as(district, delivery, kind, signer):
            _apply(session, district, delivery, held.status, held.error_code)
            applied += 1
        else:
            log.warning(
                "dropped a held Twilio report for %s: signed by %s, which did not send it",
                held.provider_id,
                held.account_sid or "an unrecorded account",
            )
        session.delete(held)
    if provider_ids is None:
        session.execute(delete(HeldCallback).where(HeldCallback.received_at < utcnow() - HOLD_FOR))
    return applied


def _recall(session: Session, district: DistrictConfig, delivery: Delivery, status: str) -> bool:
    """Place a busy or unanswered call again `recall_after_s` later, at most `recalls` more
    times and only while the message is valid (and not being taken back); the message goes back
    to dispatching if it had finished. False when it is not called again."""
    if delivery.channel != "voice" or status not in RECALLED:
        return False
    account = next((a for a in district.accounts if a.name == delivery.account), None)
    message = session.get(Message, delivery.message_id)
    if account is None or message is None or delivery.attempts > account.recalls:
        return False
    now = utcnow()
    again = now + dt.timedelta(seconds=account.recall_after_s)
    if message.valid_until is not None and again >= message.valid_until:
        return False
    if message.state not in (MessageState.DISPATCHING, *REOPENS):
        return False
    delivery.status, delivery.next_attempt_at, delivery.updated_at = (
        DeliveryStatus.QUEUED,
        again,
        now,
    )
    delivery.error = f"Call not answered: {CALL_ENDED[status]}; calling again"
    ledger.append(
        session,
        "delivery.recall",
        {
            "delivery": delivery.id,
            "provider_id": delivery.provider_id,
            "status": status,
            "calls": delivery.attempts,
            "again_at": again.isoformat(timespec="seconds"),
        },
        message_id=delivery.message_id,
    )
    if message.state in REOPENS:
        transition(session, message, "recall", None, district, delivery=delivery.id)
    return True


def placed_call(
    session: Session, district: DistrictConfig, signer: Signer, call_sid: str
) -> tuple[Delivery, Message] | None:
    """The call (and its message) that the signing account placed with this SID, if any."""
    row = session.execute(
        select(Delivery, Message)
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.provider_id == call_sid, Delivery.channel == "voice")
    ).first()
    if row is None or not _sent_as(district, row[0], row[1].kind, signer):
        return None
    return row[0], row[1]


def _sent_as(district: DistrictConfig, delivery: Delivery, kind: str, signer: Signer) -> bool:
    """Did this delivery go out through the account (and credentials) that signed the report?"""
    account = next((a for a in district.accounts if a.name == delivery.account), None)
    return account is not None and twilio_signer(account, kind) == signer


def _apply(
    session: Session,
    district: DistrictConfig,
    delivery: Delivery,
    status: str,
    error_code: str | None,
) -> None:
    new = FORWARD.get(delivery.channel, {}).get(delivery.status, {}).get(status)
    if new is None or _recall(session, district, delivery, status):
        return
    delivery.status, delivery.updated_at = new, utcnow()
    if delivery.channel == "voice" and status in CALL_ENDED:
        calls = f", {delivery.attempts} calls" if delivery.attempts > 1 else ""
        code = f", Twilio error {error_code}" if error_code else ""
        delivery.error = f"Call not answered: {CALL_ENDED[status]}{calls}{code}"
    elif error_code:
        delivery.error = f"Twilio error {error_code} ({status})"
    ledger.append(
        session,
        f"delivery.{new}",
        {
            "delivery": delivery.id,
            "provider_id": delivery.provider_id,
            "status": status,
            "error_code": error_code,
        },
        message_id=delivery.message_id,
    )
