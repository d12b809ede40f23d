"""The inbox's forward task (inbox_forward.py): thin, like approval_tasks.py's."""

from __future__ import annotations

from broadcaster.delivery import inbox_forward
from broadcaster.delivery.approval_tasks import queue_next_run
from broadcaster.delivery.celery_app import FORWARD_INBOX, app
from broadcaster.delivery.tasks import worker


@app.task(name=FORWARD_INBOX)
def forward_inbox(sid: str, targets: list[str], run: int = 1) -> None:
    """Post one run's forwards; what failed for a passing reason goes again, later."""
    queue_next_run(FORWARD_INBOX, sid, inbox_forward.forward(worker(), sid, targets, run), run)
