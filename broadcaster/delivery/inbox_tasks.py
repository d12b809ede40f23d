"""The inbox's forward task (inbox_forward.py): thin, like approval_tasks.py's."""

from __future__ import annotations

from broadcaster.delivery import inbox_forward
from broadcaster.delivery.celery_app import FORWARD_INBOX, app
from broadcaster.delivery.tasks import worker


@app.task(name=FORWARD_INBOX)
def forward_inbox(sid: str, targets: list[str], run: int = 1) -> None:
    """Post one run's forwards; what failed for a passing reason goes again, later."""
    outcome = inbox_forward.forward(worker(), sid, targets, run)
    if outcome is None:
        return
    delay = outcome.retry_in(run)
    if delay is not None:
        app.send_task(
            FORWARD_INBOX,
            args=[sid, sorted(outcome.again), run + 1],
            queue=outcome.queue,
            countdown=delay,
        )
