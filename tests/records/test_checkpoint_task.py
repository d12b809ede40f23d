"""A checkpoint follows every message's final state (issue 16, item 2): a real worker sends a
closure, the delivery code that marks it sent enqueues the checkpoint task by name, and a worker
signs a checkpoint that covers the final transition. So do a rejection and a cancellation, which
no delivery finishes, with no beat running."""

from __future__ import annotations

from sqlalchemy import select

from broadcaster.core import db
from broadcaster.core.models import LedgerEntry
from broadcaster.records import checkpoints


def test_a_message_that_reaches_its_final_state_is_covered_by_a_checkpoint(
    signed_district, stack, run, tokens, compose_closure
):
    draft = compose_closure("--channels", "x,web", audience=None)
    mid = str(draft["id"])
    assert run("submit", mid, "--as", "ana", token=tokens["ana"]).exit_code == 0
    assert run("approve", mid, "--as", "ben", token=tokens["ben"]).exit_code == 0
    stack.start_worker()
    assert stack.wait_done(draft["id"])["state"] == "sent"
    stack.wait_for(lambda: covered(run, draft["id"], "message.finish_sent"))


def covered(run, message_id: int, event: str) -> bool:
    """Whether the newest checkpoint covers the message's `event` entry."""
    with db.read_scope(run.env["BROADCASTER_DATABASE_URL"]) as session:
        final = session.scalar(
            select(LedgerEntry.seq).where(
                LedgerEntry.message_id == message_id, LedgerEntry.event == event
            )
        )
        latest = checkpoints.latest(session)
    return latest is not None and final is not None and latest.size >= final


def test_a_rejected_or_cancelled_message_is_covered_without_the_beat(
    signed_district, stack, run, tokens, compose_closure
):
    rejected, cancelled = compose_closure(), compose_closure()
    for draft in (rejected, cancelled):
        assert run("submit", str(draft["id"]), "--as", "ana", token=tokens["ana"]).exit_code == 0
    refusal = ("--reason", "wrong date")
    reject = run("reject", str(rejected["id"]), *refusal, "--as", "ben", token=tokens["ben"])
    assert reject.exit_code == 0, reject.output
    assert not covered(run, rejected["id"], "message.reject")  # nothing signs yet
    stack.start_worker("--queues", "default", "--no-beat")
    stack.wait_for(lambda: covered(run, rejected["id"], "message.reject"))
    cancel = run("cancel", str(cancelled["id"]), "--as", "ana", token=tokens["ana"])
    assert cancel.exit_code == 0, cancel.output
    stack.wait_for(lambda: covered(run, cancelled["id"], "message.cancel"))
