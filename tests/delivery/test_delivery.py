"""Delivery end to end: real Celery workers on real Redis, the real SDKs against the sandbox."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import select

from broadcaster.core.models import Delivery, WebAlert
from broadcaster.delivery.ratelimit import GRAB_MAX, TokenBucket
from tests.conftest import CARMEN_LOCKDOWN, ON_POSTGRESQL, closure_vars, submit_and_approve
from tests.delivery_stack import import_contacts, redis_url, texts_by_phone


@pytest.mark.both_databases
def test_bilingual_closure_to_500_contacts_on_all_four_channels(
    stack, run, tokens, compose_closure, tmp_path, session_factory
):
    expected = import_contacts(run, tmp_path, 500)
    draft = compose_closure()
    sms = {r["locale"]: r["text"] for r in draft["renditions"] if r["channel"] == "sms"}
    submit_and_approve(run, tokens, draft)  # approved while no worker runs: it waits in Redis
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    assert view["deliveries"]["sms"]["sent"] == len(expected)

    received = texts_by_phone(stack.sandbox)
    assert set(received) == set(expected)  # nobody opted out, nobody missing
    assert all(len(texts) == 1 for texts in received.values())  # one text per phone
    for phone, texts in received.items():
        assert texts[0] == sms[expected[phone]]  # in the recipient's language
    tweets = stack.sandbox.posts("x")  # English, then Spanish as a reply (one X account)
    assert len(tweets) == 2 and tweets[1]["in_reply_to_tweet_id"] == tweets[0]["id"]
    assert len(stack.sandbox.posts("facebook")) == 1
    facebook = stack.sandbox.posts("facebook")[0]["message"]
    assert "Tuesday, March 3" in facebook and "martes 3 de marzo" in facebook
    with session_factory() as session:
        alerts = session.scalars(select(WebAlert)).all()
    assert len(alerts) == 1 and 'lang="es"' in alerts[0].body
    assert run("records", "verify").exit_code == 0


@pytest.mark.slow
@pytest.mark.both_databases
def test_a_worker_killed_mid_fanout_loses_and_duplicates_nothing(stack, tokens, compose_closure):
    expected, draft = stack.kill_a_worker_mid_fanout(tokens, compose_closure, families=1000)
    assert len(stack.sandbox.posts("twilio")) < len(expected)  # it died mid fan-out
    # Two workers, each with its own beat: concurrent sweeps must not resend either.
    stack.start_worker(concurrency=4)
    stack.start_worker(concurrency=4)
    view = stack.wait_done(draft["id"], timeout=240)
    assert view["state"] == "sent", view
    received = texts_by_phone(stack.sandbox)
    assert set(received) == set(expected)
    duplicates = {p: len(t) for p, t in received.items() if len(t) > 1}
    assert duplicates == {}


@ON_POSTGRESQL
def test_faults_end_with_nothing_lost_or_duplicated(stack, run, tokens, compose_closure, tmp_path):
    expected = import_contacts(run, tmp_path, 120)
    stack.sandbox.set_faults(
        [
            {"provider": "twilio", "fault": "rate_limit", "count": 15, "retry_after": 1},
            {"provider": "twilio", "fault": "status", "status": 503, "count": 10},
            {"provider": "twilio", "fault": "timeout_after_accept", "count": 5},
            {"provider": "twilio", "fault": "drop", "count": 3},
            {"provider": "x", "fault": "status", "status": 503, "count": 2},
            {"provider": "facebook", "fault": "timeout_after_accept", "count": 1},
        ]
    )
    draft = compose_closure()
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    view = stack.wait_done(draft["id"], timeout=180)
    assert view["state"] == "sent", view
    received = texts_by_phone(stack.sandbox)
    assert set(received) == set(expected)
    assert {p: len(t) for p, t in received.items() if len(t) > 1} == {}
    assert len(stack.sandbox.posts("x")) == 2  # the English post and its Spanish reply
    assert len(stack.sandbox.posts("facebook")) == 1  # the timed-out post was found, not resent
    shown = run.json("show", str(draft["id"]))
    assert any(step["event"] == "message.finish_sent" for step in shown["timeline"])


def test_a_permanent_error_keeps_the_providers_message_and_retry_resends_only_failures(
    stack, run, tokens, compose_closure, tmp_path, session_factory
):
    admin = run.json("users", "add", "it")["token"]
    csv = tmp_path / "c.csv"
    csv.write_text(
        "phone,language\n+14155550100,en\n+15005550001,en\n+14155550102,es\n", encoding="utf-8"
    )
    run.json("contacts", "import", str(csv), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms,web")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "partially_sent"
    assert view["deliveries"]["sms"]["failed"] == 1
    with session_factory() as session:
        failed = session.scalars(select(Delivery).where(Delivery.status == "failed")).one()
    assert failed.recipient == "+15005550001"
    assert "not a valid phone number" in failed.error
    assert failed.error_raw  # the provider's raw response is kept
    before = len(stack.sandbox.posts("twilio"))
    assert run("retry", str(draft["id"]), "--as", "ben", token=tokens["ben"]).exit_code == 0
    view = stack.wait_done(draft["id"])
    assert view["state"] == "partially_sent"
    assert len(stack.sandbox.posts("twilio")) == before  # the sent ones were not sent again
    assert run("retry", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 2


def test_trigger_is_for_incident_commanders_and_pre_approved_templates(stack, run, tokens):
    lockdown = ("--var", "school=lincoln-hs", "--audience", "school:lincoln-hs", "--yes")
    before = run.json("list")
    refused = run("trigger", "lockdown", "--as", "ana", *lockdown, token=tokens["ana"])
    assert (
        refused.exit_code == 2 and "may not send a pre-approved template at once" in refused.stderr
    )
    refused = run(
        "trigger",
        "school_closure",
        "--as",
        "carmen",
        *closure_vars("snow"),
        "--yes",
        token=tokens["carmen"],
    )
    assert refused.exit_code == 2 and "not pre-approved" in refused.stderr
    assert run("trigger", *CARMEN_LOCKDOWN, token=tokens["carmen"]).exit_code == 2
    assert run.json("list") == before  # nothing was written

    stack.start_worker("--queues", "urgent")  # only urgent workers: the incident goes there
    result = run(
        "trigger", "lockdown", "--as", "carmen", *lockdown, "--json", token=tokens["carmen"]
    )
    assert result.exit_code == 0, result.output
    shown = run.json("show", str(run.json("list")[0]["id"]))
    assert shown["state"] == "sent" and shown["needs_review"] is True
    assert len(stack.sandbox.posts("x")) == 2  # the English post and its Spanish reply


def test_a_test_message_reaches_only_the_test_allowlist(
    stack, run, tokens, compose_closure, tmp_path, district
):
    import_contacts(run, tmp_path, 30)
    draft = compose_closure("--kind", "test")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "sent"
    assert set(texts_by_phone(stack.sandbox)) == {"+19515550199"}
    for text in texts_by_phone(stack.sandbox)["+19515550199"]:
        assert text.startswith("[TEST")
    shown = run.json("show", str(draft["id"]))
    assert {t["account"] for t in shown["targets"]} <= set(district.test_allowlist.accounts)


@ON_POSTGRESQL
def test_nothing_goes_out_after_valid_until(
    stack, run, tokens, compose_closure, tmp_path, district
):
    import_contacts(run, tmp_path, 10)
    soon = dt.datetime.now(ZoneInfo(district.district.time_zone)) + dt.timedelta(seconds=3)
    draft = compose_closure("--valid-until", soon.strftime("%Y-%m-%dT%H:%M:%S"))
    submit_and_approve(run, tokens, draft)
    time.sleep(4)
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "expired"  # every channel, not only texts
    assert view["deliveries"]["sms"]["expired"] == 9
    assert {c: view["deliveries"][c]["expired"] for c in ("x", "facebook", "web")} == {
        "x": 2,  # the Spanish reply expires with the post it would answer
        "facebook": 1,
        "web": 1,
    }
    for provider in ("twilio", "x", "facebook"):
        assert stack.sandbox.posts(provider) == []


def test_the_token_bucket_is_shared_between_workers():
    client = redis.Redis.from_url(redis_url())
    first, second = TokenBucket(client, "acct", 2.0), TokenBucket(client, "acct", 2.0)
    assert first.take() == 0 and second.take() == 0  # a burst of one second's worth
    assert first.take() > 0 and second.take() > 0  # then both wait: the bucket is shared


def test_sending_threads_do_not_starve_each_other_of_a_full_bucket():
    client = redis.Redis.from_url(redis_url())
    # 64 threads (two workers' call threads), one text each, from a bucket of 1,000 a second:
    # what one thread takes ahead must not leave the others waiting on a full bucket.
    buckets = [TokenBucket(client, "busy", 1000.0) for _ in range(64)]
    assert all(bucket.acquire(max_wait=0.0) for bucket in buckets)
    assert buckets[0].take(1000 - 64 * GRAB_MAX) == 0  # nobody took more than a few ahead


@pytest.mark.slow
@ON_POSTGRESQL
def test_a_text_twilio_creates_after_the_client_gave_up_is_not_sent_twice(
    stack, run, tokens, compose_closure, tmp_path, session_factory
):
    expected = import_contacts(run, tmp_path, 3)
    # The first text reaches Twilio, which creates it only after the worker's 1 s timeout: a
    # lookup right after the timeout cannot see it yet, and must not be taken as "never sent".
    stack.sandbox.set_faults(
        [{"provider": "twilio", "fault": "latency", "ms": 3000, "method": "POST", "count": 1}]
    )
    draft = compose_closure()
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    deadline = time.monotonic() + 30
    while stack.sandbox.requests("twilio")[0].get("status") is None:  # Twilio is still on it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    received = texts_by_phone(stack.sandbox)
    assert set(received) == set(expected)
    assert {phone: len(texts) for phone, texts in received.items()} == dict.fromkeys(expected, 1)
    with session_factory() as session:
        late = session.scalars(select(Delivery).where(Delivery.lookups > 0)).one()
    assert late.status == "sent" and late.attempts == 1  # found by a later lookup, not resent


@ON_POSTGRESQL
def test_a_hanging_text_holds_back_only_itself(
    stack, run, tokens, compose_closure, tmp_path, session_factory
):
    # One batch of texts; Twilio answers the first one only after 6 s (under the timeout).
    run.env.update({"BROADCASTER_PROVIDER_TIMEOUT_S": "20", "BROADCASTER_LEASE_SECONDS": "60"})
    expected = import_contacts(run, tmp_path, 30)
    stack.sandbox.set_faults(
        [{"provider": "twilio", "fault": "latency", "ms": 6000, "method": "POST", "count": 1}]
    )
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    stack.start_worker()
    view = stack.wait_done(draft["id"])
    assert view["state"] == "sent", view
    received = texts_by_phone(stack.sandbox)
    assert {phone: len(texts) for phone, texts in received.items()} == dict.fromkeys(expected, 1)

    # The rest of its batch went out, and was recorded as sent, while it hung.
    slow = next(r for r in stack.sandbox.requests("twilio") if r.get("latency_ms"))
    assert stack.sandbox.posts("twilio")[-1]["sid"] == slow["resource_id"]
    with session_factory() as session:
        rows = session.scalars(select(Delivery).where(Delivery.channel == "sms")).all()
    hung = next(row for row in rows if row.provider_id == slow["resource_id"])
    assert all(row.sent_at < hung.sent_at for row in rows if row is not hung)
