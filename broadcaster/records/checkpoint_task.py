"""The Celery task that signs a checkpoint of the ledger (records/checkpoints.py). Its name,
SIGN_CHECKPOINT, is in delivery/celery_app.py, which loads this module into every worker:
delivery sends it by name once a message reaches its final state (delivery does not import
records), and the beat sends it every `[records] checkpoint_every_minutes`. A run that finds
nothing new since the last checkpoint signs nothing."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from broadcaster.core import db
from broadcaster.core.config import Settings, load_district
from broadcaster.delivery.celery_app import SIGN_CHECKPOINT, app
from broadcaster.records import checkpoints, signing

log = logging.getLogger(__name__)


@app.task(name=SIGN_CHECKPOINT)
def sign_checkpoint() -> int | None:
    """Sign the tree as it is now; returns the checkpoint's size, or None when nothing was
    signed (no key configured, or nothing new)."""
    settings = Settings()
    # Read at each run: a rotated key is used from the next checkpoint on.
    signer = signing.configured_signer(load_district(settings.config_path))
    if signer is None:
        return None
    try:
        with db.session_scope(settings.effective_database_url) as session:
            signed = checkpoints.sign_checkpoint(session, signer)
    except IntegrityError:
        log.info("another worker signed this checkpoint first")
        return None
    return signed.size if signed else None
