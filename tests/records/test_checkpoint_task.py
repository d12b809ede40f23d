"""A checkpoint follows every message's final state (issue 16, item 2): a real worker sends a
closure, the delivery code that marks it sent enqueues the checkpoint task by name, and a worker
signs a checkpoint that covers the final transition."""

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
    url = run.env["BROADCASTER_DATABASE_URL"]

    def covered() -> bool:
        with db.read_scope(url) as session:
            final = session.scalar(
                select(LedgerEntry.seq).where(
                    LedgerEntry.message_id == draft["id"],
                    LedgerEntry.event == "message.finish_sent",
                )
            )
            latest = checkpoints.latest(session)
        return latest is not None and final is not None and latest.size >= final

    stack.wait_for(covered)
