"""A checkpoint of the ledger after every final state (issue 16): once the transaction that puts
a message in a final state commits (sent, partially sent, failed, expired, rejected, cancelled,
retracted), a worker on the default queue signs a checkpoint that covers it. The task is sent by
name (records/checkpoint_task.py): delivery and authoring do not import records."""

from __future__ import annotations

import contextlib

from sqlalchemy.orm import Session

from broadcaster.core import db
from broadcaster.core.config import DistrictConfig
from broadcaster.delivery.celery_app import DEFAULT, SIGN_CHECKPOINT, client_for


def sign_after_commit(session: Session, district: DistrictConfig) -> None:
    """Ask for a checkpoint once the session commits (never if it rolls back). Without a key
    configured nothing is signed; without the session's settings, or with the broker down, the
    beat's checkpoint covers the state within `[records] checkpoint_every_minutes`."""
    settings = session.info.get(db.SETTINGS)
    if settings is None or district.signing_key_path is None:
        return

    def ring() -> None:
        with contextlib.suppress(Exception):  # the beat's run covers it: never fail the commit
            client_for(settings).send_task(SIGN_CHECKPOINT, queue=DEFAULT)

    db.after_commit(session, ring)
