"""Recording: write what happened to a group of jobs, with their ledger entries, and finish
messages with nothing left open.

Outcomes are written in small groups (one bulk UPDATE, one bulk ledger append), and only where
the claim is still ours (DESIGN.md): a row the sweep took back is left to the sweep's own record.
A delivery whose outcome could not be confirmed stays claimed, by nobody, until the sweep looks
it up again.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from broadcaster.core import follow_ups, ledger
from broadcaster.core.config import DistrictConfig
from broadcaster.core.db import session_scope
from broadcaster.core.errors import Refused
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Delivery, Message, utcnow
from broadcaster.core.states import OPEN, SUCCEEDED, DeliveryStatus, MessageState
from broadcaster.delivery import checkpointing, metrics, provider_callbacks, tallies, threads
from broadcaster.delivery.dispatch import Batch, batches
from broadcaster.delivery.jobs import UNCONFIRMED, Result, awaiting_lookup_claim

if TYPE_CHECKING:
    from broadcaster.delivery.sending import Worker

EVENT = {
    DeliveryStatus.SENT: "delivery.sent",
    DeliveryStatus.FAILED: "delivery.failed",
    DeliveryStatus.EXPIRED: "delivery.expired",
    DeliveryStatus.QUEUED: "delivery.retry",
    UNCONFIRMED: "delivery.unconfirmed",
}
# Waiting time before the sweep asks the provider again about a delivery it could not confirm;
# it doubles with each inconclusive lookup of the same delivery, up to the cap.
LOOK_AGAIN_S, LOOK_AGAIN_CAP_S = 5.0, 300.0


def lookup_backoff(lookups: int) -> float:
    """Seconds before the next lookup of a delivery whose lookups so far were inconclusive."""
    doubling: int = 2 ** max(0, lookups - 1)
    return min(LOOK_AGAIN_CAP_S, LOOK_AGAIN_S * doubling)


_TABLE = cast(Table, Delivery.__table__)  # a declarative class's table is a Table
_COLUMNS = _TABLE.c
# Typed parameters, so dates and JSON are stored exactly as the ORM stores them.
_RECORD = (
    update(_TABLE)
    .where(_COLUMNS.id == bindparam("_id"))
    .values(
        **{
            column: bindparam(f"_{column}", type_=_COLUMNS[column].type)
            for column in (
                "attempts",
                "lookups",
                "claim",
                "status",
                "updated_at",
                "lease_until",
                "provider_id",
                "provider_url",
                "sent_at",
                "error",
                "error_raw",
                "next_attempt_at",
            )
        },
    )
)


def _row_values(result: Result, now: dt.datetime) -> dict[str, Any]:
    receipt = result.receipt
    status: str = result.status
    lease, claim_token = None, None
    if status == UNCONFIRMED:  # stays claimed, by nobody, until the sweep looks again
        status = DeliveryStatus.SENDING
        lease = now + dt.timedelta(seconds=lookup_backoff(result.job.lookups))
        claim_token = awaiting_lookup_claim()
    retry_at = now + dt.timedelta(seconds=result.retry_in or 0)
    return {
        "_id": result.job.delivery_id,
        "_attempts": result.job.attempt,
        "_lookups": result.job.lookups,
        "_claim": claim_token,
        "_status": status,
        "_updated_at": now,
        "_lease_until": lease,
        "_provider_id": receipt.provider_id if receipt else None,
        "_provider_url": receipt.url if receipt else None,
        "_sent_at": now if result.status == DeliveryStatus.SENT else None,
        "_error": result.error,
        "_error_raw": result.raw,
        "_next_attempt_at": retry_at if result.status == DeliveryStatus.QUEUED else None,
    }


def _ledger_entry(worker: Worker, result: Result) -> ledger.Entry:
    job, receipt = result.job, result.receipt
    deleted = job.action == "delete" and result.status == DeliveryStatus.SENT
    return ledger.Entry(
        "delivery.deleted" if deleted else EVENT[result.status],
        {
            "delivery": job.delivery_id,
            "channel": job.channel,
            "account": job.account,
            "recipient": job.recipient,
            "action": job.action,
            "refers_to": job.refers_to,
            "attempt": job.attempt,
            "how": result.how,
            "provider_id": receipt.provider_id if receipt else None,
            "url": receipt.url if receipt else None,
            "error": result.error,
            # Honest about where it went: a rehearsal or sandbox account is not a post.
            "sandbox": worker.sandboxed(job.account, job.kind),
        },
        message_id=job.message_id,
    )


def record(worker: Worker, results: list[Result]) -> list[Batch]:
    """Write outcomes, only where the claim is still ours, with their ledger entries (one bulk
    UPDATE, one bulk append); finish messages with nothing left open; return the retries."""
    now = utcnow()
    with session_scope(worker.settings.effective_database_url) as session:
        held = {r.job.delivery_id: r.job.claim for r in results}
        rows = session.execute(
            select(Delivery.id, Delivery.claim)
            .where(Delivery.id.in_(list(held)), Delivery.status == DeliveryStatus.SENDING)
            .with_for_update()
        ).all()
        ours = {row.id for row in rows if row.claim == held[row.id]}
        # Anything else was taken back by the sweep, which records its own outcome.
        kept = [r for r in results if r.job.delivery_id in ours]
        if not kept:
            return []
        session.execute(_RECORD, [_row_values(r, now) for r in kept])
        ledger.append_many(session, [_ledger_entry(worker, r) for r in kept])
        # A delivery report that beat this record to the database is waiting for these ids.
        provider_callbacks.apply_held(
            session,
            worker.district,
            [r.receipt.provider_id for r in kept if r.status == DeliveryStatus.SENT and r.receipt],
        )
        retry_ids: dict[tuple[int, float], list[tuple[int, str]]] = defaultdict(list)
        for r in kept:
            if r.status == DeliveryStatus.QUEUED:
                # Rounded up: a retry that arrives before its next_attempt_at is not due, and
                # would wait for the sweep.
                key = (r.job.message_id, math.ceil((r.retry_in or 0) * 10) / 10)
                retry_ids[key].append((r.job.delivery_id, r.job.channel))
        # The replies of an X thread go once the tweet they answer has its id.
        for message_id, reply_id, channel in threads.settle(session, kept):
            retry_ids[(message_id, 0.0)].append((reply_id, channel))
        planned: list[Batch] = []
        for (message_id, delay), ids in retry_ids.items():
            message = session.get(Message, message_id)
            retried = batches(message, ids)  # type: ignore[arg-type]  # its deliveries exist, so it does
            planned += [Batch(b.queue, b.ids, delay) for b in retried]
    metrics.count_outcomes(kept)  # after the commit: only outcomes that were written
    # Apart from the ledger's lock: most calls find rows still open and stop at one index probe.
    for message_id in {r.job.message_id for r in kept}:
        with session_scope(
            worker.settings.effective_database_url, settings=worker.settings
        ) as session:
            finish_if_done(session, worker.district, message_id)
    return planned


def finish_if_done(session: Session, district: DistrictConfig, message_id: int) -> str | None:
    """dispatching → sent | partially_sent | failed once no delivery is open and every text is
    written (a message still expanding has more to come, however settled its rows so far)."""
    still_open = session.scalar(
        select(Delivery.id)
        .where(Delivery.message_id == message_id, Delivery.status.in_(OPEN))
        .limit(1)
    )
    if still_open is not None:
        return None
    message = session.get(Message, message_id)
    if message is None or message.state != MessageState.DISPATCHING or message.expanding:
        return None
    counts = tallies.by_status(session, message_id)
    if any(counts.get(s) for s in OPEN):
        return None
    try:
        transition(session, message, finish_action(counts), None, district, deliveries=counts)
    except Refused:
        return None  # another worker finished it first
    follow_ups.settle_original(session, district, message)
    checkpointing.sign_after_commit(session, district)
    return message.state


def finish_action(counts: dict[str, int]) -> str:
    succeeded = sum(counts.get(s, 0) for s in SUCCEEDED)
    total = sum(counts.values())
    if total and succeeded == total:
        return "finish_sent"
    if succeeded:
        return "finish_partial"
    if total and counts.get("expired", 0) == total:
        return "finish_expired"  # nothing was refused: it all came too late
    return "finish_failed"
