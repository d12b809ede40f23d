"""The sweep recovers quickly and quietly, and attempts count provider calls (issue 10, item 7).

Orphaned deliveries are made the way a killed worker leaves them: `sending` under a claim whose
lease ran out. The sweep runs in this process against the real database, the real Redis (its
lock and the accounts' token buckets) and the real Twilio SDK against the sandbox, which counts
every lookup request.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from broadcaster.core.config import SAMPLE_CONFIG, Settings, load_district
from broadcaster.core.models import Delivery, LedgerEntry, LedgerPayload, utcnow
from broadcaster.delivery import expansion
from broadcaster.delivery import sweep as sweeping
from broadcaster.delivery.sending import Worker
from channel_adapters import AccountConfig, build
from tests.conftest import ON_POSTGRESQL, submit_and_approve
from tests.delivery_stack import texts_by_phone, write_contacts


def in_process_worker(run, monkeypatch) -> Worker:
    for name, value in run.env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    return Worker(
        settings=settings,
        district=load_district(settings.config_path),
        redis_client=redis.Redis.from_url(str(settings.broker_url)),
    )


def orphan_texts(run, tokens, compose_closure, tmp_path, session_factory, n: int) -> list[int]:
    """A text message approved while no worker runs, its rows then left `sending` under claims
    that lapsed one after another (the lowest id the longest ago). Returns the row ids."""
    admin = run.json("users", "add", "it")["token"]
    write_contacts(tmp_path / "contacts.csv", n)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    # The texts, written after the approval as a worker would.
    expansion.expand(run.settings(), load_district(SAMPLE_CONFIG), [draft["id"]])
    now = utcnow()
    with session_factory() as session:
        rows = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        for age, row in enumerate(reversed(rows), start=1):
            row.status, row.claim = "sending", uuid.uuid4().hex
            row.claimed_at = now - dt.timedelta(seconds=300 + age)
            row.lease_until = now - dt.timedelta(seconds=60 + age)
        return [row.id for row in rows]


def lookups_seen(sandbox) -> list[dict]:
    return [r for r in sandbox.requests("twilio") if r["method"] == "GET"]


def rows(session_factory) -> dict[int, Delivery]:
    with session_factory() as session:
        found = session.scalars(select(Delivery)).all()
        session.expunge_all()
    return {row.id: row for row in found}


def lapse(session_factory, ids: list[int]) -> None:
    """As if each row's lookup backoff had run out."""
    with session_factory() as session:
        for row in session.scalars(select(Delivery).where(Delivery.id.in_(ids))):
            row.lease_until = utcnow() - dt.timedelta(seconds=1)


def test_two_sweeps_at_once_look_up_once(
    stack, run, tokens, compose_closure, tmp_path, session_factory, monkeypatch
):
    ids = orphan_texts(run, tokens, compose_closure, tmp_path, session_factory, 30)
    # Slow lookups, so the second sweep starts while the first still holds the lock.
    stack.sandbox.set_faults([{"provider": "twilio", "fault": "latency", "ms": 2000}])
    run.env["BROADCASTER_PROVIDER_TIMEOUT_S"] = "10"  # slow, not failed
    worker = in_process_worker(run, monkeypatch)
    start = threading.Barrier(2)

    def one_sweep(_: int) -> list:
        start.wait()
        return sweeping.sweep(worker)

    with ThreadPoolExecutor(2) as pool:
        planned = list(pool.map(one_sweep, range(2)))
    assert sorted(bool(p) for p in planned) == [False, True]  # one found the lock held
    # One listing of the account's messages answered for all 30 rows, asked once.
    assert len(lookups_seen(stack.sandbox)) == 1
    after = rows(session_factory)
    assert {after[i].status for i in ids} == {"queued"}  # not at Twilio: send again
    assert {after[i].lookups for i in ids} == {1}
    assert {after[i].attempts for i in ids} == {0}  # nothing was ever sent


def test_a_held_lock_makes_a_sweep_return_at_once(
    stack, run, tokens, compose_closure, tmp_path, session_factory, monkeypatch
):
    ids = orphan_texts(run, tokens, compose_closure, tmp_path, session_factory, 5)
    worker = in_process_worker(run, monkeypatch)
    held = worker.redis_client.lock(sweeping.LOCK_KEY, timeout=60)
    assert held.acquire(blocking=False)
    assert sweeping.sweep(worker) == []
    assert lookups_seen(stack.sandbox) == []
    assert {rows(session_factory)[i].status for i in ids} == {"sending"}
    held.release()
    assert sweeping.sweep(worker)  # re-enqueued
    assert {rows(session_factory)[i].status for i in ids} == {"queued"}


def test_a_sweep_reconciles_at_most_its_bound_oldest_first(
    stack, run, tokens, compose_closure, tmp_path, session_factory, monkeypatch
):
    ids = orphan_texts(run, tokens, compose_closure, tmp_path, session_factory, 14)
    monkeypatch.setenv("BROADCASTER_SWEEP_LOOKUPS", "5")
    worker = in_process_worker(run, monkeypatch)
    sweeping.sweep(worker)
    after = rows(session_factory)
    assert [i for i in ids if after[i].status == "queued"] == ids[:5]  # the longest lapsed
    assert {after[i].status for i in ids[5:]} == {"sending"}
    sweeping.sweep(worker)
    after = rows(session_factory)
    assert [i for i in ids if after[i].status == "queued"] == ids[:10]


def test_a_row_whose_lookup_fails_is_backed_off(
    stack, run, tokens, compose_closure, tmp_path, session_factory, monkeypatch
):
    [row_id] = orphan_texts(run, tokens, compose_closure, tmp_path, session_factory, 1)
    stack.sandbox.set_faults(
        [{"provider": "twilio", "fault": "status", "status": 503, "method": "GET"}]
    )
    worker = in_process_worker(run, monkeypatch)
    sweeping.sweep(worker)
    row = rows(session_factory)[row_id]
    assert (row.status, row.lookups) == ("sending", 1)  # nothing known: nothing resent
    assert "lookup failed" in row.error
    first_wait = row.lease_until - row.updated_at
    assert first_wait > dt.timedelta(0)

    sweeping.sweep(worker)  # the next sweep leaves it alone
    assert len(lookups_seen(stack.sandbox)) == 1

    lapse(session_factory, [row_id])
    sweeping.sweep(worker)
    row = rows(session_factory)[row_id]
    assert (row.status, row.lookups) == ("sending", 2)
    assert row.lease_until - row.updated_at > first_wait  # a longer wait each time
    assert len(lookups_seen(stack.sandbox)) == 2

    stack.sandbox.set_faults([])
    lapse(session_factory, [row_id])
    sweeping.sweep(worker)
    row = rows(session_factory)[row_id]
    assert (row.status, row.lookups) == ("queued", 3)  # not at Twilio: send it
    assert stack.sandbox.posts("twilio") == []


def test_a_lookup_without_a_token_waits_for_a_later_sweep(
    stack, run, tokens, compose_closure, tmp_path, session_factory, monkeypatch
):
    ids = orphan_texts(run, tokens, compose_closure, tmp_path, session_factory, 3)
    worker = in_process_worker(run, monkeypatch)
    # Another worker has just used the account's whole second of calls.
    bucket = worker.bucket("district-sms")
    assert bucket is not None
    client = redis.Redis.from_url(str(worker.settings.broker_url))
    client.hset(bucket.key, mapping={"tokens": -5000, "at": client.time()[0]})
    sweeping.sweep(worker)
    assert lookups_seen(stack.sandbox) == []
    after = rows(session_factory)
    assert {(after[i].status, after[i].lookups, after[i].error) for i in ids} == {
        ("sending", 0, None)
    }
    client.delete(bucket.key)
    sweeping.sweep(worker)
    assert {rows(session_factory)[i].status for i in ids} == {"queued"}


def slow_sms_district(tmp_path: Path, rate: float) -> Path:
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE_CONFIG.parent, folder)
    config = folder / SAMPLE_CONFIG.name
    text = config.read_text(encoding="utf-8")
    assert "rate_per_second = 100.0" in text
    config.write_text(text.replace("rate_per_second = 100.0", f"rate_per_second = {rate}"))
    return config


@pytest.mark.slow
@ON_POSTGRESQL
def test_attempts_count_only_requests_that_reached_the_provider(
    stack, run, tokens, compose_closure, tmp_path, session_factory
):
    # 4 texts a second for 60 recipients in batches of 50 (12.5 s a batch, past the 8 s
    # lease): most of a batch is handed back by the local rate limit or released unsent as its
    # claim nears its end, then some 503s.
    run.env["BROADCASTER_CONFIG"] = str(slow_sms_district(tmp_path, 4.0))
    admin = run.json("users", "add", "it")["token"]
    expected = write_contacts(tmp_path / "contacts.csv", 60)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    stack.sandbox.set_faults(
        [{"provider": "twilio", "fault": "status", "status": 503, "method": "POST", "count": 6}]
    )
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    stack.start_worker(concurrency=4)
    assert stack.wait_done(draft["id"], timeout=300)["state"] == "sent"

    sends: dict[str, int] = {}
    for request in stack.sandbox.requests("twilio"):
        if request["method"] == "POST":
            sends[request["body"]["To"]] = sends.get(request["body"]["To"], 0) + 1
    with session_factory() as session:
        attempts = {
            row.recipient: row.attempts
            for row in session.scalars(select(Delivery).where(Delivery.channel == "sms"))
        }
        retries = session.scalars(
            select(LedgerPayload.body)
            .join(LedgerEntry, LedgerPayload.seq == LedgerEntry.seq)
            .where(LedgerEntry.event == "delivery.retry")
        )
        handed_back = [
            how
            for how in (json.loads(body)["how"] for body in retries)
            if how in ("rate limited locally", "claim about to lapse; released unsent")
        ]
    assert set(attempts) == set(expected)
    assert handed_back  # the run did hand rows back without a provider call
    assert attempts == sends  # one attempt per request Twilio saw, no more
    assert max(attempts.values()) >= 2  # the 503s were retried and counted


# What an inconclusive lookup says when it learned nothing (sending.py's lookups).
NOTHING_LEARNED = ("lookup failed", "not at the provider yet", "lookup waits for the rate limit")


@pytest.mark.slow
@ON_POSTGRESQL
def test_a_killed_workers_texts_are_each_looked_up_at_most_once(
    stack, tokens, compose_closure, session_factory
):
    expected, draft = stack.kill_a_worker_mid_fanout(tokens, compose_closure, families=1500)
    with session_factory() as session:
        orphaned = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == "sending")
        )
    assert orphaned  # it died holding claims
    # Two workers, each with its own beat sweeping every second.
    stack.start_worker(concurrency=4)
    stack.start_worker(concurrency=4)
    assert stack.wait_done(draft["id"], timeout=240)["state"] == "sent"
    received = texts_by_phone(stack.sandbox)
    assert set(received) == set(expected)
    assert {p: len(t) for p, t in received.items() if len(t) > 1} == {}
    # Each orphaned row looked up once at most (a bulk listing answers for many at once),
    # however many sweeps ran while they waited.
    assert len(lookups_seen(stack.sandbox)) <= orphaned
    with session_factory() as session:
        again = set(session.scalars(select(Delivery.id).where(Delivery.lookups > 1)))
        inconclusive = {
            payload["delivery"]
            for payload in map(
                json.loads,
                session.scalars(
                    select(LedgerPayload.body)
                    .join(LedgerEntry, LedgerPayload.seq == LedgerEntry.seq)
                    .where(LedgerEntry.event == "delivery.unconfirmed")
                ),
            )
            if payload["error"].startswith(NOTHING_LEARNED)
        }
    # A second lookup only after one that learned nothing: on a loaded machine a send or a
    # listing may outlast the 1 s provider timeout. A listing too short for its claims is not
    # among the excuses.
    assert again <= inconclusive


def test_one_listing_answers_many_text_lookups():
    from provider_sandbox import Sandbox

    sid, token = "AC" + "5" * 32, "sweep-test-token"
    with Sandbox(port=0, twilio_auth_tokens={sid: token}) as sandbox:
        adapter = build(
            AccountConfig(
                name="district-sms",
                channel="sms",
                settings={"account_sid": sid, "messaging_service_sid": "MG" + "1" * 32},
                credentials={"auth_token": token},
                sandbox_url=sandbox.url,
            )
        )
        since = utcnow() - dt.timedelta(seconds=5)
        first = adapter.send("School closed", to="+14155550101")
        second = adapter.send("Escuela cerrada", to="+14155550102")
        adapter.send("Route 12 late", to="+14155550101")
        later = utcnow() + dt.timedelta(days=1)
        found, complete = adapter.lookup_many(
            [
                ("School closed", "+14155550101", since),
                ("Escuela cerrada", "+14155550102", since),
                ("Escuela cerrada", "+14155550101", since),  # that text went to someone else
                ("School closed", "+14155550101", later),  # sent before this claim
            ],
            max_pages=2,
        )
        assert complete  # the listing covered everything since the earliest claim
        assert {p: r.provider_id for p, r in found.items()} == {
            0: first.provider_id,
            1: second.provider_id,
        }
        assert len(lookups_seen(sandbox)) == 1
