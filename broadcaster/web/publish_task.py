"""The Celery task that republishes the public site (web/publish.py). Its name, PUBLISH_SITE, is
in delivery/celery_app.py, which loads this module into every worker: the alert store and
retention send it by name, the beat sends it as a periodic check, and none of them imports web.

A worker stores an alert and only then records the delivery that links it to its message, which
is when the pages show it. A run that starts between the two finds nothing new; so while an alert
stored in the last minute is still unlinked, the task looks again shortly.
"""

from __future__ import annotations

import datetime as dt
import threading

from broadcaster.core.config import Settings, load_district
from broadcaster.delivery.celery_app import PUBLISH_SITE, app
from broadcaster.web.publish import Publisher

IN_FLIGHT = dt.timedelta(minutes=1)
LOOK_AGAIN_S = 0.5

_lock = threading.Lock()
_publisher: Publisher | None = None


def publisher() -> Publisher | None:
    """This worker's publisher (one web app, kept), or None if the district publishes no site."""
    global _publisher
    with _lock:
        if _publisher is None:
            settings = Settings()
            district = load_district(settings.config_path)
            if district.site_dir is None:
                return None
            _publisher = Publisher(settings, district)
        return _publisher


@app.task(name=PUBLISH_SITE)
def publish_site() -> None:
    site = publisher()
    if site is None:
        return
    site.publish()
    if site.awaiting_link(IN_FLIGHT):
        publish_site.apply_async(countdown=LOOK_AGAIN_S)
