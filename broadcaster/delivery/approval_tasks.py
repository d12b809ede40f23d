"""The approvers' notice task (approvals.py): thin, like tasks.py's."""

from __future__ import annotations

from broadcaster.delivery import approvals
from broadcaster.delivery.celery_app import NOTIFY_APPROVERS, app
from broadcaster.delivery.tasks import worker


@app.task(name=NOTIFY_APPROVERS)
def notify_approvers(message_id: int, targets: list[str], run: int = 1) -> None:
    """Send the notices of one run; what failed for a passing reason goes again, later (a new
    task with a short countdown: the ledger has each run's outcome)."""
    queue_next_run(
        NOTIFY_APPROVERS, message_id, approvals.notify(worker(), message_id, targets, run), run
    )


def queue_next_run(task: str, key: int | str, outcome: approvals.Run | None, run: int) -> None:
    """A staff post task's next run (approvers' notices, the inbox's forwards): the targets that
    failed for a reason that may pass, after a back-off; none once the runs are spent."""
    if outcome is None:
        return
    delay = outcome.retry_in(run)
    if delay is not None:
        app.send_task(
            task, args=[key, sorted(outcome.again), run + 1], queue=outcome.queue, countdown=delay
        )
