"""Recording outcomes: a retry is enqueued no sooner than its row is due again."""

from __future__ import annotations

from sqlalchemy import select

from broadcaster.core.config import SAMPLE_CONFIG, load_district
from broadcaster.core.db import session_scope
from broadcaster.core.models import Delivery
from broadcaster.core.states import DeliveryStatus
from broadcaster.delivery import expansion
from broadcaster.delivery.jobs import Result, claim, load_jobs
from broadcaster.delivery.recording import record
from broadcaster.delivery.sending import Worker
from tests.conftest import submit_and_approve
from tests.delivery_stack import write_contacts


def test_a_retry_arrives_no_sooner_than_its_row_is_due(
    run, tokens, compose_closure, tmp_path, session_factory
):
    admin = run.json("users", "add", "it")["token"]
    write_contacts(tmp_path / "contacts.csv", 3)
    run.json("contacts", "import", str(tmp_path / "contacts.csv"), "--as", "it", token=admin)
    draft = compose_closure("--channels", "sms")
    submit_and_approve(run, tokens, draft)
    expansion.expand(run.settings(), load_district(SAMPLE_CONFIG), [draft["id"]])
    worker = Worker(settings=run.settings(), district=load_district(SAMPLE_CONFIG))
    with session_scope(worker.settings.effective_database_url) as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.channel == "sms")).all()
        jobs = load_jobs(session, claim(session, ids, lease_s=60))
    waits = [1.23, 0.01, 2.05]  # a local rate limit's jittered waits
    outcomes = zip(jobs, waits, strict=True)
    retries = record(
        worker, [Result(job, DeliveryStatus.QUEUED, retry_in=wait) for job, wait in outcomes]
    )
    # A task that arrived before next_attempt_at would find its row not due, and leave it to
    # the sweep: each batch waits at least as long as each of its rows must.
    countdown = {i: batch.countdown for batch in retries for i in batch.ids}
    assert sorted(countdown) == sorted(job.delivery_id for job in jobs)
    for job, wait in zip(jobs, waits, strict=True):
        assert countdown[job.delivery_id] >= wait
    with session_factory() as session:
        due = session.scalars(select(Delivery).where(Delivery.id.in_(ids))).all()
    assert {row.status for row in due} == {"queued"}
