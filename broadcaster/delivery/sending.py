"""Delivery: the worker loop. Claim rows, call the adapters, decide the retry, have it recorded.

Guarantees (DESIGN.md): a row is claimed (`queued → sending`) with a conditional UPDATE before any
provider call, so no two workers send it; an ambiguous outcome is looked up at the provider before
any resend; a claim whose lease ran out is reconciled the same way by the sweep. Outcomes are
written in small groups with their ledger entries, and only while the claim is still ours.
Claiming and loading the jobs is in jobs.py, writing their outcomes in recording.py.

A batch's provider calls run side by side on the process's call threads (`Worker.calls`), so one
call that hangs until its timeout holds back only itself: the rest of its batch goes out, and is
recorded, meanwhile. Every outcome goes to the process's one writer (recorder.py) as it comes in.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import redis

from broadcaster.core.config import DistrictConfig, Settings
from broadcaster.core.config_fields import ADDRESSED_CHANNELS, FAMILY_CHANNELS, NEVER_ROUTINE
from broadcaster.core.db import session_scope
from broadcaster.core.errors import BroadcasterError, Refused
from broadcaster.core.models import utcnow
from broadcaster.core.rehearsals import ensure_allowed, ensure_allowed_recipient
from broadcaster.core.states import DeliveryStatus
from broadcaster.delivery import metrics
from broadcaster.delivery.accounts import account_config, email_domain, uses_sandbox
from broadcaster.delivery.jobs import UNCONFIRMED, Job, Result, claim, load_jobs
from broadcaster.delivery.ratelimit import CallSlots, TokenBucket
from broadcaster.delivery.recorder import Recorder
from channel_adapters import (
    AccountConfig,
    Adapter,
    DeliveryError,
    Outcome,
    Receipt,
    adapter_for,
)
from channel_adapters.email import split_rendition

MAX_ATTEMPTS = 8
BACKOFF_BASE_S, BACKOFF_CAP_S = 2.0, 300.0
SMS_VALIDITY_S = 4 * 3600  # Twilio's default; never beyond the message's own valid_until
CALL_THREADS = 16  # provider calls in flight per worker process (the worker's --concurrency)
# A lookup costs the account's API calls like a send: it waits this long at most for a token.
LOOKUP_WAIT_S = 1.0


@dataclass
class Worker:
    """What a worker process shares between its threads; adapters are one per thread."""

    settings: Settings
    district: DistrictConfig
    redis_client: redis.Redis | None = None
    call_threads: int = CALL_THREADS
    _local: threading.local = field(default_factory=threading.local)
    # Long-lived threads, so each keeps its adapters (their HTTP connections) between batches.
    calls: ThreadPoolExecutor = field(init=False)
    recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        self.calls = ThreadPoolExecutor(self.call_threads, thread_name_prefix="provider-call")
        self.recorder = Recorder(self)

    def adapter(self, account: str, kind: str) -> Adapter:
        cache: dict[tuple[str, bool], Adapter] = self._local.__dict__.setdefault("adapters", {})
        key = (account, self.sandboxed(account, kind))  # its own credentials, or the sandbox's
        if key not in cache:
            config: AccountConfig = account_config(self.settings, self.district, account, kind)
            cache[key] = adapter_for(config.channel)(config)
        return cache[key]

    def sandboxed(self, account: str, kind: str) -> bool:
        return uses_sandbox(next(a for a in self.district.accounts if a.name == account), kind)

    def call_slots(self, account: str) -> CallSlots | None:
        """The voice account's cap on calls in progress, if it has one."""
        config = next(a for a in self.district.accounts if a.name == account)
        if self.redis_client is None or config.max_concurrent_calls is None:
            return None
        slots: dict[str, CallSlots] = self._local.__dict__.setdefault("slots", {})
        if account not in slots:
            slots[account] = CallSlots(
                self.redis_client, account, config.max_concurrent_calls, config.call_slot_s
            )
        return slots[account]

    def bucket(self, account: str) -> TokenBucket | None:
        if self.redis_client is None:
            return None
        rate = next(a.rate for a in self.district.accounts if a.name == account)
        buckets: dict[str, TokenBucket] = self._local.__dict__.setdefault("buckets", {})
        if account not in buckets:
            buckets[account] = TokenBucket(self.redis_client, account, rate)
        return buckets[account]


def may_call(worker: Worker, account: str, max_wait: float, tokens: int = 1) -> bool:
    """Take the tokens for one provider call from the account's shared rate limit: one, or a
    text's segments (the provider meters segments, and the send-time planner counts them)."""
    bucket = worker.bucket(account)
    return bucket is None or bucket.acquire(max_wait=max_wait, count=tokens)


def backoff(attempt: int) -> float:
    """Exponential with full jitter, so a 429 storm does not come back in step."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311 (jitter, not a secret)


def send_batch(worker: Worker, ids: list[int]) -> None:
    """Claim and send one batch, each outcome recorded as it comes in; returns once they all
    are (the recorder enqueues the retries)."""
    url = worker.settings.effective_database_url
    with session_scope(url) as session:
        claimed = claim(session, ids, worker.settings.lease_seconds)
        jobs = load_jobs(session, claimed) if claimed else []
    # The session is closed: no connection is held during the slow provider calls.
    calls = [worker.calls.submit(send_one, worker, job, last_start(worker, job)) for job in jobs]
    written = [worker.recorder.put(call.result()) for call in as_completed(calls)]
    for outcome in written:
        outcome.result()


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
    return Result(job, DeliveryStatus.EXPIRED, error="not sent: the message was no longer valid")


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
        if job.channel in FAMILY_CHANNELS:
            ensure_allowed_recipient(worker.district, job.kind, job.channel, job.recipient)
        adapter = worker.adapter(job.account, job.kind)
    except (Refused, BroadcasterError) as exc:
        return Result(job, DeliveryStatus.FAILED, error=str(exc))
    # No longer than the claim can use a token: a slow rate limit releases rows, it does not
    # hold them (with their finished neighbours' outcomes unrecorded) past the lease.
    wait = min(5.0, (start_by - utcnow()).total_seconds())
    if wait > 0 and not may_call(worker, job.account, max_wait=wait, tokens=job.segments):
        retry_in = 1 + random.random()  # noqa: S311 (jitter, not a secret)
        return Result(job, DeliveryStatus.QUEUED, retry_in=retry_in, how="rate limited locally")
    now = utcnow()
    if too_late(job, now):  # the rate limit may have held it past valid_until
        return expired(job)
    if now > start_by:
        return Result(
            job, DeliveryStatus.QUEUED, retry_in=0, how="claim about to lapse; released unsent"
        )
    slots = worker.call_slots(job.account) if job.action == "send" else None
    if slots is not None and not slots.open(job.delivery_id):
        retry_in = 1 + random.random()  # noqa: S311 (jitter, not a secret)
        return Result(job, DeliveryStatus.QUEUED, retry_in=retry_in, how="calls at their cap")
    # From here a request goes to the provider: only that counts as an attempt.
    job.attempt += 1
    if job.action == "delete":
        return delete_one(adapter, job)
    result = place(worker, adapter, job, now)
    if slots is not None and result.status in (DeliveryStatus.QUEUED, DeliveryStatus.FAILED):
        slots.close(job.delivery_id)  # no call is going on
    return result


def place(worker: Worker, adapter: Any, job: Job, now: dt.datetime) -> Result:
    """The provider request that sends the job (a post, text, call or e-mail)."""
    to = job.recipient if job.channel in ADDRESSED_CHANNELS else None
    valid_for = validity(job, now)
    text, extra = job.text, channel_options(worker, job)
    if job.channel == "email":
        subject, text = split_rendition(job.text)
        extra["subject"] = subject
    try:
        with metrics.timed(job.channel, "send"):
            receipt = adapter.send(
                text, to=to, reply_to=job.refers_to, valid_for_s=valid_for, **extra
            )
    except DeliveryError as exc:
        return classify(worker, adapter, job, exc, to)
    return Result(job, DeliveryStatus.SENT, receipt=receipt)


def channel_options(worker: Worker, job: Job) -> dict[str, Any]:
    """What only one channel's adapter takes: a call's language (the adapter picks the voice
    for it); an e-mail's List-Unsubscribe choice and its stable Message-ID."""
    if job.channel == "voice":
        return {"locale": job.locale}
    if job.channel == "email":
        return {
            "routine": job.category not in NEVER_ROUTINE,
            "message_id": message_id_for(worker, job),
            "html": job.html,
        }
    return {}


def message_id_for(worker: Worker, job: Job) -> str:
    """The delivery's e-mail Message-ID, the same on every attempt: a resend after a lost reply
    carries the one the first attempt did (the family's mail client drops the duplicate, the
    sandbox's lookup finds it), and it is the provider id recorded. It names no person
    (redaction.OUR_MESSAGE_ID)."""
    account = next(a for a in worker.district.accounts if a.name == job.account)
    domain = email_domain(account, job.kind)
    return f"<delivery-{job.delivery_id}.message-{job.message_id}@{domain}>"


def delete_one(adapter: Any, job: Job) -> Result:
    """Take a post down. A delete is idempotent (the adapters count a post already gone as
    done), so an unclear outcome is simply tried again, never looked up."""
    try:
        with metrics.timed(job.channel, "retract"):
            adapter.retract(Receipt(str(job.refers_to)))
    except DeliveryError as exc:
        if exc.outcome is Outcome.PERMANENT:
            return Result(job, DeliveryStatus.FAILED, error=str(exc), raw=_raw(exc))
        return retry(job, exc, _raw(exc), exc.retry_after)
    return Result(job, DeliveryStatus.SENT, how="deleted")


def _raw(exc: DeliveryError) -> dict[str, Any] | None:
    raw = getattr(exc, "raw", None)
    return raw if isinstance(raw, dict) else ({"raw": raw} if raw is not None else None)


def classify(worker: Worker, adapter: Any, job: Job, exc: DeliveryError, to: str | None) -> Result:
    raw = _raw(exc)
    if exc.outcome is Outcome.AMBIGUOUS:
        why = f"after {exc}"
        found = after_lookup(worker, adapter, job, to, why, exc.retry_after)
        if found is None:
            return Result(job, UNCONFIRMED, error="lookup waits for the rate limit", how=why)
        if found.status != DeliveryStatus.QUEUED:
            return found
        # "Not there" right after the client gave up proves nothing: the provider may still be
        # working on the request. The row stays claimed; the sweep looks again once it settled.
        return Result(
            job, UNCONFIRMED, error="not at the provider yet; looking again later", how=why
        )
    if exc.outcome is Outcome.RETRYABLE:
        return retry(job, exc, raw, exc.retry_after)
    return Result(job, DeliveryStatus.FAILED, error=str(exc), raw=raw)


def retry(
    job: Job, exc: Exception, raw: dict[str, Any] | None, retry_after: float | None
) -> Result:
    if job.attempt >= MAX_ATTEMPTS:
        return Result(
            job,
            DeliveryStatus.FAILED,
            error=f"gave up after {job.attempt} attempts: {exc}",
            raw=raw,
        )
    delay = max(retry_after or 0.0, backoff(job.attempt))
    return Result(
        job,
        DeliveryStatus.QUEUED,
        error=str(exc),
        raw=raw,
        retry_in=min(delay, BACKOFF_CAP_S),
        how="will retry",
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
        return Result(job, UNCONFIRMED, error=f"lookup failed ({exc})", how=why)
    return looked_up(job, found, why, retry_after)


def looked_up(
    job: Job, found: Receipt | None, why: str, retry_after: float | None = None
) -> Result:
    """What a conclusive lookup means for the delivery."""
    if found is not None:
        return Result(job, DeliveryStatus.SENT, receipt=found, how=f"confirmed by lookup {why}")
    return Result(
        job,
        DeliveryStatus.QUEUED,
        retry_in=retry_after or 0,
        how=f"not at the provider {why}; resend",
    )
