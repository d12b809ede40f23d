"""Delivery: claim rows, call the adapters, record what happened, decide the retry.

Guarantees (DESIGN.md): a row is claimed (`queued → sending`) with a conditional UPDATE before any
provider call, so no two workers send it; an ambiguous outcome is looked up at the provider before
any resend; a claim whose lease ran out is reconciled the same way by the sweep. Outcomes are
written in small groups with their ledger entries, and only while the claim is still ours.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.core import follow_ups, ledger
from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.db import session_scope
from broadcaster.core.errors import BroadcasterError, Refused
from broadcaster.core.lifecycle import transition
from broadcaster.core.models import Delivery, Message, utcnow
from broadcaster.core.rehearsals import ensure_allowed, ensure_allowed_phone
from broadcaster.core.states import OPEN, SUCCEEDED, DeliveryStatus
from broadcaster.delivery import metrics, provider_callbacks
from broadcaster.delivery.accounts import account_config, uses_sandbox
from broadcaster.delivery.dispatch import MULTILINGUAL, Batch, batches
from broadcaster.delivery.ratelimit import TokenBucket
from channel_adapters import (
    AccountConfig,
    Adapter,
    DeliveryError,
    Outcome,
    Receipt,
    adapter_for,
)

MAX_ATTEMPTS = 8
BACKOFF_BASE_S, BACKOFF_CAP_S = 2.0, 300.0
SMS_VALIDITY_S = 4 * 3600  # Twilio's default; never beyond the message's own valid_until
RECORD_EVERY = 25
LANGUAGE_LABEL = {"en": "In English", "es": "En español"}
EVENT = {
    "sent": "delivery.sent",
    "failed": "delivery.failed",
    "expired": "delivery.expired",
    "queued": "delivery.retry",
    "unconfirmed": "delivery.unconfirmed",
}
# Waiting time before the sweep asks the provider again about a delivery it could not confirm;
# it doubles with each inconclusive lookup of the same delivery, up to the cap.
LOOK_AGAIN_S, LOOK_AGAIN_CAP_S = 5.0, 300.0
# A lookup costs the account's API calls like a send: it waits this long at most for a token.
LOOKUP_WAIT_S = 1.0


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


@dataclass
class Result:
    job: Job
    # sent | failed | expired | queued (retry later) | unconfirmed (maybe sent: look it up again)
    status: str
    receipt: Receipt | None = None
    error: str | None = None
    raw: dict[str, Any] | None = None
    retry_in: float | None = None
    how: str = "sent"


@dataclass
class Worker:
    """What a worker process shares between its threads; adapters are one per thread."""

    settings: Settings
    district: DistrictConfig
    redis_client: redis.Redis | None = None
    _local: threading.local = field(default_factory=threading.local)

    def adapter(self, account: str, kind: str) -> Adapter:
        cache: dict[tuple[str, bool], Adapter] = self._local.__dict__.setdefault("adapters", {})
        key = (account, self.sandboxed(account, kind))  # its own credentials, or the sandbox's
        if key not in cache:
            config: AccountConfig = account_config(self.settings, self.district, account, kind)
            cache[key] = adapter_for(config.channel)(config)
        return cache[key]

    def sandboxed(self, account: str, kind: str) -> bool:
        return uses_sandbox(next(a for a in self.district.accounts if a.name == account), kind)

    def bucket(self, account: str) -> TokenBucket | None:
        if self.redis_client is None:
            return None
        rate = next(a.rate_per_second for a in self.district.accounts if a.name == account)
        buckets: dict[str, TokenBucket] = self._local.__dict__.setdefault("buckets", {})
        if account not in buckets:
            buckets[account] = TokenBucket(self.redis_client, account, rate)
        return buckets[account]


def may_call(worker: Worker, account: str, max_wait: float) -> bool:
    """Take a token for one provider call from the account's shared rate limit."""
    bucket = worker.bucket(account)
    return bucket is None or bucket.acquire(max_wait=max_wait)


def lookup_backoff(lookups: int) -> float:
    """Seconds before the next lookup of a delivery whose lookups so far were inconclusive."""
    doubling: int = 2 ** max(0, lookups - 1)
    return min(LOOK_AGAIN_CAP_S, LOOK_AGAIN_S * doubling)


def backoff(attempt: int) -> float:
    """Exponential with full jitter, so a 429 storm does not come back in step."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311 (jitter, not a secret)


# --- claiming ----------------------------------------------------------------------------------


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
    """The rendition for one language, or every language in one post (Facebook, web)."""
    texts = {r.locale: r.text for r in message.renditions if r.channel == channel}
    if locale != MULTILINGUAL:
        return texts[locale]
    ordered = [loc for loc in message.locales if loc in texts]
    if channel == "web":
        return "\n".join(f'<section lang="{loc}">\n{texts[loc]}\n</section>' for loc in ordered)
    parts = [texts[ordered[0]]]
    parts += [f"— {LANGUAGE_LABEL.get(loc, loc)} —\n\n{texts[loc]}" for loc in ordered[1:]]
    return "\n\n".join(parts)


def load_jobs(session: Session, ids: list[int]) -> list[Job]:
    rows = session.scalars(select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id)).all()
    messages = {
        m.id: m
        for m in session.scalars(
            select(Message).where(Message.id.in_({r.message_id for r in rows}))
        )
    }
    return [
        Job(
            delivery_id=r.id,
            message_id=r.message_id,
            channel=r.channel,
            account=r.account,
            recipient=r.recipient,
            kind=messages[r.message_id].kind,
            # A deletion has no text of its own: it acts on the post it refers to.
            text=text_for(messages[r.message_id], r.channel, r.locale)
            if r.action == "send"
            else "",
            attempt=r.attempts,
            claimed_at=r.claimed_at,  # type: ignore[arg-type]  # set on every claimed row
            valid_until=messages[r.message_id].valid_until,
            claim=r.claim,  # type: ignore[arg-type]  # set on every claimed row
            action=r.action,
            refers_to=r.refers_to,
            lookups=r.lookups,
        )
        for r in rows
    ]


# --- sending -----------------------------------------------------------------------------------


def send_batch(worker: Worker, ids: list[int]) -> list[Batch]:
    """Claim, send and record one batch; returns the retries to enqueue later."""
    url = worker.settings.effective_database_url
    with session_scope(url) as session:
        claimed = claim(session, ids, worker.settings.lease_seconds)
        jobs = load_jobs(session, claimed) if claimed else []
    # The session is closed: no connection is held during the slow provider calls.
    pending: list[Result] = []
    retries: list[Batch] = []
    for job in jobs:
        pending.append(send_one(worker, job, last_start(worker, job)))
        if len(pending) >= RECORD_EVERY:
            retries += record(worker, pending)
            pending = []
    if pending:
        retries += record(worker, pending)
    return retries


def last_start(worker: Worker, job: Job) -> dt.datetime:
    """The latest moment this claim may start a provider call: the call must be over, timeout
    included, before the lease ends and the sweep may look the delivery up and send it again."""
    lease_s = worker.settings.lease_seconds
    margin = max(1.0, lease_s * 0.1)
    return job.claimed_at + dt.timedelta(
        seconds=lease_s - worker.settings.provider_timeout_s - margin
    )


def too_late(job: Job, now: dt.datetime) -> bool:
    """Nothing goes out after the message's valid_until, on any channel. Taking a post down
    is not sending: a deletion goes ahead whenever it comes."""
    return job.action == "send" and job.valid_until is not None and now >= job.valid_until


def expired(job: Job) -> Result:
    return Result(job, "expired", error="not sent: the message was no longer valid")


def validity(job: Job, now: dt.datetime) -> int | None:
    """Seconds the channel may keep the message: a text at most until valid_until (Twilio's
    default when there is none), a web alert exactly until then; posts have no expiry."""
    remaining = (job.valid_until - now).total_seconds() if job.valid_until else None
    if job.channel == "sms":
        return max(1, int(SMS_VALIDITY_S if remaining is None else min(SMS_VALIDITY_S, remaining)))
    if job.channel == "web" and remaining is not None:
        return max(1, math.ceil(remaining))
    return None


def send_one(worker: Worker, job: Job, start_by: dt.datetime) -> Result:
    if too_late(job, utcnow()):
        return expired(job)
    try:
        ensure_allowed(worker.district, job.kind, job.account)
        if job.channel == "sms":
            ensure_allowed_phone(worker.district, job.kind, job.recipient)
        adapter = worker.adapter(job.account, job.kind)
    except (Refused, BroadcasterError) as exc:
        return Result(job, "failed", error=str(exc))
    # No longer than the claim can use a token: a slow rate limit releases rows, it does not
    # hold them (with their finished neighbours' outcomes unrecorded) past the lease.
    wait = min(5.0, (start_by - utcnow()).total_seconds())
    if wait > 0 and not may_call(worker, job.account, max_wait=wait):
        retry_in = 1 + random.random()  # noqa: S311 (jitter, not a secret)
        return Result(job, "queued", retry_in=retry_in, how="rate limited locally")
    now = utcnow()
    if too_late(job, now):  # the rate limit may have held it past valid_until
        return expired(job)
    if now > start_by:
        return Result(job, "queued", retry_in=0, how="claim about to lapse; released unsent")
    # From here a request goes to the provider: only that counts as an attempt.
    job.attempt += 1
    if job.action == "delete":
        return delete_one(adapter, job)
    to = job.recipient if job.channel == "sms" else None
    valid_for = validity(job, now)
    try:
        with metrics.timed(job.channel, "send"):
            receipt = adapter.send(job.text, to=to, reply_to=job.refers_to, valid_for_s=valid_for)
    except DeliveryError as exc:
        return classify(worker, adapter, job, exc, to)
    return Result(job, "sent", receipt=receipt)


def delete_one(adapter: Any, job: Job) -> Result:
    """Take a post down. A delete is idempotent (the adapters count a post already gone as
    done), so an unclear outcome is simply tried again, never looked up."""
    try:
        with metrics.timed(job.channel, "retract"):
            adapter.retract(Receipt(str(job.refers_to)))
    except DeliveryError as exc:
        if exc.outcome is Outcome.PERMANENT:
            return Result(job, "failed", error=str(exc), raw=_raw(exc))
        return retry(job, exc, _raw(exc), exc.retry_after)
    return Result(job, "sent", how="deleted")


def _raw(exc: DeliveryError) -> dict[str, Any] | None:
    raw = getattr(exc, "raw", None)
    return raw if isinstance(raw, dict) else ({"raw": raw} if raw is not None else None)


def classify(worker: Worker, adapter: Any, job: Job, exc: DeliveryError, to: str | None) -> Result:
    raw = _raw(exc)
    if exc.outcome is Outcome.AMBIGUOUS:
        why = f"after {exc}"
        found = after_lookup(worker, adapter, job, to, why, exc.retry_after)
        return found or Result(job, "unconfirmed", error="lookup waits for the rate limit", how=why)
    if exc.outcome is Outcome.RETRYABLE:
        return retry(job, exc, raw, exc.retry_after)
    return Result(job, "failed", error=str(exc), raw=raw)


def retry(
    job: Job, exc: Exception, raw: dict[str, Any] | None, retry_after: float | None
) -> Result:
    if job.attempt >= MAX_ATTEMPTS:
        return Result(job, "failed", error=f"gave up after {job.attempt} attempts: {exc}", raw=raw)
    delay = max(retry_after or 0.0, backoff(job.attempt))
    return Result(
        job, "queued", error=str(exc), raw=raw, retry_in=min(delay, BACKOFF_CAP_S), how="will retry"
    )


def lookup_since(job: Job) -> dt.datetime:
    return job.claimed_at - dt.timedelta(seconds=5)  # a little clock skew between hosts


def after_lookup(
    worker: Worker,
    adapter: Any,
    job: Job,
    to: str | None,
    why: str,
    retry_after: float | None = None,
) -> Result | None:
    """Did the provider get it? Found: sent. Not there: send again. The lookup itself failed:
    nothing is known, so nothing is resent; the sweep asks again later. None: the account's
    rate limit has no token for the lookup yet, so nothing was asked."""
    if not may_call(worker, job.account, LOOKUP_WAIT_S):
        return None
    job.lookups += 1
    try:
        with metrics.timed(job.channel, "lookup"):
            found = adapter.lookup(job.text, to=to, since=lookup_since(job))
    except DeliveryError as exc:
        return Result(job, "unconfirmed", error=f"lookup failed ({exc})", how=why)
    return looked_up(job, found, why, retry_after)


def looked_up(
    job: Job, found: Receipt | None, why: str, retry_after: float | None = None
) -> Result:
    """What a conclusive lookup means for the delivery."""
    if found is not None:
        return Result(job, "sent", receipt=found, how=f"confirmed by lookup {why}")
    return Result(
        job, "queued", retry_in=retry_after or 0, how=f"not at the provider {why}; resend"
    )


# --- recording ---------------------------------------------------------------------------------


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
    status, lease = result.status, None
    claim_token = None
    if status == "unconfirmed":  # stays claimed, by nobody, until the sweep looks again
        status = "sending"
        lease = now + dt.timedelta(seconds=lookup_backoff(result.job.lookups))
        claim_token = uuid.uuid4().hex
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
        "_sent_at": now if result.status == "sent" else None,
        "_error": result.error,
        "_error_raw": result.raw,
        "_next_attempt_at": retry_at if result.status == "queued" else None,
    }


def _ledger_entry(worker: Worker, result: Result) -> ledger.Entry:
    job, receipt = result.job, result.receipt
    deleted = job.action == "delete" and result.status == "sent"
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
            [r.receipt.provider_id for r in kept if r.status == "sent" and r.receipt],
        )
        retry_ids: dict[tuple[int, float], list[tuple[int, str]]] = defaultdict(list)
        for r in kept:
            if r.status == "queued":
                key = (r.job.message_id, round(r.retry_in or 0, 1))
                retry_ids[key].append((r.job.delivery_id, r.job.channel))
        planned: list[Batch] = []
        for (message_id, delay), ids in retry_ids.items():
            message = session.get(Message, message_id)
            retried = batches(message, ids)  # type: ignore[arg-type]  # its deliveries exist, so it does
            planned += [Batch(b.queue, b.ids, delay) for b in retried]
    metrics.count_outcomes(kept)  # after the commit: only outcomes that were written
    # Apart from the ledger's lock: most calls find rows still open and stop at one index probe.
    for message_id in {r.job.message_id for r in kept}:
        with session_scope(worker.settings.effective_database_url) as session:
            finish_if_done(session, worker.district, message_id)
    return planned


def finish_if_done(session: Session, district: DistrictConfig, message_id: int) -> str | None:
    """dispatching → sent | partially_sent | failed once no delivery is open."""
    still_open = session.scalar(
        select(Delivery.id)
        .where(Delivery.message_id == message_id, Delivery.status.in_(OPEN))
        .limit(1)
    )
    if still_open is not None:
        return None
    message = session.get(Message, message_id)
    if message is None or message.state != "dispatching":
        return None
    counts = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.message_id == message_id)
            .group_by(Delivery.status)
        ).all()
    )
    if any(counts.get(s) for s in OPEN):
        return None
    try:
        transition(session, message, finish_action(counts), None, district, deliveries=counts)
    except Refused:
        return None  # another worker finished it first
    follow_ups.settle_original(session, district, message)
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
