"""The sweep: recover what lost workers left behind, quickly and quietly.

It re-enqueues deliveries left `queued` past a deadline (and expansions of a message's texts that
stopped making progress: expansion.stalled), gives each family nothing reached in time its
category's next channel (escalation.due), queues again the approvers' notices the broker lost
(approvals.ring_again), and reconciles `sending` rows whose claim lapsed: did the provider get
it? A chaos run showed what an unbounded sweep does (31,085 lookups for ~1,400
orphaned texts, sweeps piling up behind each other), so:

- one sweep at a time across all hosts: a Redis lock (the broker's server, which every worker
  and beat shares); a sweep that finds it held returns at once;
- bounded work: at most `Settings.sweep_lookups` lapsed claims (the oldest first) and
  `sweep_requeue` stale rows per sweep; the rest waits for the next one;
- lookups run in a small thread pool (an adapter per thread) and, for texts, in bulk: one listing
  of the account's messages answers for many rows where that takes fewer calls;
- every lookup call takes a token from the account's rate limit, like a send; without one the row
  waits for a later sweep;
- a row whose lookup was inconclusive is looked up again only after a growing delay
  (`recording.lookup_backoff`, counted in `Delivery.lookups`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import redis
from redis.lock import Lock
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from broadcaster.core import contacts
from broadcaster.core.config_fields import ADDRESSED_CHANNELS
from broadcaster.core.db import session_scope
from broadcaster.core.errors import BroadcasterError
from broadcaster.core.models import Delivery, Message, utcnow
from broadcaster.core.states import DeliveryStatus, MessageState
from broadcaster.delivery import (
    approvals,
    escalation,
    expansion,
    metrics,
    provider_callbacks,
    tallies,
    threads,
)
from broadcaster.delivery.dispatch import Batch, batches
from broadcaster.delivery.jobs import AWAITING_LOOKUP, UNCONFIRMED, Job, Result, load_jobs
from broadcaster.delivery.recording import finish_if_done, record
from broadcaster.delivery.sending import (
    LOOKUP_WAIT_S,
    Worker,
    after_lookup,
    looked_up,
    lookup_since,
    may_call,
)
from channel_adapters import DeliveryError, adapter_for

log = logging.getLogger(__name__)

LOCK_KEY = "broadcaster:sweep"
LOOKUP_THREADS = 4
# No lookup starts later than this into a sweep.
BUDGET_S = 60.0
# The lock is short and renewed while its sweep runs: a host that is lost mid-sweep (its link cut,
# its processes killed) holds up the other hosts' sweeps for at most this long.
LOCK_S = 15.0
# A bulk listing may meet a few more messages than this deployment sent (other senders on the
# account): the page estimate allows for that.
LISTING_SLACK = 1.25
LAPSED = "after its claim lapsed"


@dataclass
class Lookup:
    """Rows answered together: one row, or (pages > 0) several texts on one account answered
    by one listing of at most `pages` pages."""

    jobs: list[Job]
    pages: int = 0


def sweep(worker: Worker) -> list[Batch]:
    lock = None
    if worker.redis_client is not None:
        lock = worker.redis_client.lock(LOCK_KEY, timeout=LOCK_S, blocking=False)
        if not lock.acquire():
            log.debug("sweep skipped: another sweep is running")
            return []
    try:
        with _renewed(lock):
            return _sweep(worker)
    finally:
        if lock is not None:
            # A sweep whose renewals failed finds its lock gone (another may hold it now).
            with contextlib.suppress(redis.exceptions.RedisError):
                lock.release()


@contextlib.contextmanager
def _renewed(lock: Lock | None) -> Iterator[None]:
    """Keep the lock while the block runs. If renewing fails (this host lost the broker), the
    lock lapses and another host's sweep may overlap this one: harmless, as `record` writes an
    outcome only while the claim it was loaded with still holds."""
    if lock is None:
        yield
        return
    done = threading.Event()

    def renew() -> None:
        while not done.wait(LOCK_S / 3):
            try:
                lock.reacquire()
            except redis.exceptions.RedisError:
                return

    threading.Thread(target=renew, name="sweep-lock", daemon=True).start()
    try:
        yield
    finally:
        done.set()


def _sweep(worker: Worker) -> list[Batch]:
    now = utcnow()
    url = worker.settings.effective_database_url
    with session_scope(url) as session:
        settings = worker.settings
        planned = requeue_stale(session, now, settings.requeue_after, settings.sweep_requeue)
        planned += expansion.stalled(session, now, settings.requeue_after)
        planned += escalation.due(session, worker.district, now)
        approvals.ring_again(session, settings, now)
        jobs = load_jobs(session, lapsed_claims(session, now, settings.sweep_lookups))
        lookups = plan_lookups(worker, session, jobs)
        dispatching = list(
            session.scalars(select(Message.id).where(Message.state == MessageState.DISPATCHING))
        )
    results = reconcile_all(worker, lookups)
    for result in results:
        if result.status == DeliveryStatus.SENT and not result.job.claim.startswith(
            AWAITING_LOOKUP
        ):
            # Found at the provider: the lapsed claim made that call but never recorded it.
            result.job.attempt += 1
    if results:
        planned += record(worker, results)
    with session_scope(url) as session:
        provider_callbacks.apply_held(session, worker.district)
        contacts.drop_unused_versions(session)  # replaced contact lists no message reads
        tallies.fold(session)
    with session_scope(url, settings=worker.settings) as session:
        for message_id in dispatching:
            finish_if_done(session, worker.district, message_id)
    return planned


def requeue_stale(session: Session, now: dt.datetime, after_s: float, limit: int) -> list[Batch]:
    """`queued` rows nobody took (their task was lost with a worker): enqueue them again, the
    longest-waiting first. No provider call: the claim makes a second task harmless."""
    stale = session.execute(
        select(Delivery.id, Delivery.channel, Delivery.message_id)
        .where(
            Delivery.status == DeliveryStatus.QUEUED,
            Delivery.updated_at < now - dt.timedelta(seconds=after_s),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            threads.READY,  # an X thread's reply goes when the tweet it answers is sent
        )
        .order_by(Delivery.updated_at)
        .limit(limit)
    ).all()
    if not stale:
        return []
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_([r.id for r in stale]))
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    by_message: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in stale:
        by_message[row.message_id].append((row.id, row.channel))
    planned: list[Batch] = []
    for message_id, rows in by_message.items():
        message = session.get(Message, message_id)
        planned += batches(message, rows)  # type: ignore[arg-type]  # a delivery's message exists
    return planned


def lapsed_claims(session: Session, now: dt.datetime, limit: int) -> list[int]:
    """`sending` rows whose lease ran out, the longest-lapsed first (a row backed off after an
    inconclusive lookup has its lease pushed out, so it comes later)."""
    return list(
        session.scalars(
            select(Delivery.id)
            .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now)
            .order_by(Delivery.lease_until, Delivery.id)
            .limit(limit)
        )
    )


def plan_lookups(worker: Worker, session: Session, jobs: list[Job]) -> list[Lookup]:
    """One lookup per row, except texts on one account where listing the account's recent
    messages takes fewer calls than asking about each row."""
    groups: dict[tuple[str, bool], list[Job]] = defaultdict(list)
    plan: list[Lookup] = []
    for job in jobs:
        bulk = job.action == "send" and hasattr(adapter_for(job.channel), "lookup_many")
        if bulk:
            groups[(job.account, worker.sandboxed(job.account, job.kind))].append(job)
        else:
            plan.append(Lookup([job]))
    for (account, _), group in groups.items():
        pages = listing_pages(session, account, group, worker.settings.lease_seconds)
        if pages < len(group):
            plan.append(Lookup(group, pages))
        else:
            plan += [Lookup([job]) for job in group]
    return plan


def listing_pages(session: Session, account: str, group: list[Job], lease_s: float) -> int:
    """Pages a listing needs to reach back to the earliest of these claims: estimated from
    what this deployment sent on the account since (a send may come a lease after its claim)."""
    floor = min(lookup_since(job) for job in group) - dt.timedelta(seconds=lease_s)
    sent = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.account == account, Delivery.claimed_at >= floor)
    )
    adapter = adapter_for(group[0].channel)
    page_size: int = adapter.LIST_PAGE_SIZE  # type: ignore[attr-defined]  # SMS: the one that lists
    return math.ceil((sent or 0) * LISTING_SLACK / page_size) + 1


@cache
def _pool() -> ThreadPoolExecutor:
    # Long-lived threads, so each keeps its adapters (and SDK sessions) from sweep to sweep.
    return ThreadPoolExecutor(max_workers=LOOKUP_THREADS, thread_name_prefix="sweep-lookup")


def reconcile_all(worker: Worker, lookups: list[Lookup]) -> list[Result]:
    deadline = time.monotonic() + BUDGET_S
    futures = [_pool().submit(reconcile, worker, lookup, deadline) for lookup in lookups]
    return [result for future in futures for result in future.result()]


def reconcile(worker: Worker, lookup: Lookup, deadline: float) -> list[Result]:
    """Lapsed claims: did the provider get them? Then they were sent; otherwise send again.
    No result for a row means it waits for the next sweep (out of time or out of tokens)."""
    first = lookup.jobs[0]
    if first.action == "delete":  # deleting again is harmless: no lookup needed
        return [
            Result(
                first, DeliveryStatus.QUEUED, retry_in=0, how="delete again after its claim lapsed"
            )
        ]
    if time.monotonic() > deadline:
        return []
    try:
        adapter = worker.adapter(first.account, first.kind)
    except BroadcasterError as exc:
        return [Result(job, DeliveryStatus.FAILED, error=str(exc)) for job in lookup.jobs]
    if lookup.pages:
        return reconcile_many(worker, adapter, lookup)
    to = first.recipient if first.channel in ADDRESSED_CHANNELS else None
    result = after_lookup(worker, adapter, first, to, LAPSED)
    return [result] if result is not None else []


def reconcile_many(worker: Worker, adapter: object, lookup: Lookup) -> list[Result]:
    account, channel = lookup.jobs[0].account, lookup.jobs[0].channel
    # A token per page the listing may take, before any is asked for.
    if not all(may_call(worker, account, LOOKUP_WAIT_S) for _ in range(lookup.pages)):
        return []
    for job in lookup.jobs:
        job.lookups += 1
    wanted = [(job.text, job.recipient, lookup_since(job)) for job in lookup.jobs]
    try:
        with metrics.timed(channel, "lookup"):
            listing = adapter.lookup_many  # type: ignore[attr-defined]  # SMS: the one that lists
            found, complete = listing(wanted, max_pages=lookup.pages)
    except DeliveryError as exc:
        return [
            Result(job, UNCONFIRMED, error=f"lookup failed ({exc})", how=LAPSED)
            for job in lookup.jobs
        ]
    return [
        looked_up(job, found.get(position), LAPSED)
        if complete or position in found
        else Result(job, UNCONFIRMED, error="lookup: listing ended before its claim", how=LAPSED)
        for position, job in enumerate(lookup.jobs)
    ]
