"""The console's Workers panel: the live workers from their heartbeats, escaped, and a plain
warning when none has reported."""

from __future__ import annotations

import datetime as dt

from broadcaster.core.models import WorkerHeartbeat, utcnow
from broadcaster.delivery import heartbeat
from tests.console_client import body

HOSTILE = "<script>alert(1)</script>"


def test_the_dashboard_lists_live_workers_escaped(console, session_factory):
    browser = console.signed_in("ana")  # an author: every staff member sees the panel
    assert "No worker has reported" in body(browser.get("/console/"))

    now = utcnow()
    with session_factory() as session:
        for name, seen in ((HOSTILE, now), ("gone-host", now - dt.timedelta(hours=1))):
            session.add(
                WorkerHeartbeat(
                    hostname=name,
                    pid=4242,
                    queues="urgent,sms",
                    beat=True,
                    broker_fingerprint="0" * 64,
                    broker_display=heartbeat.mask_url("redis://:hunter2@redis.internal:6379/0"),
                    started_at=seen,
                    last_seen=seen,
                )
            )
    page = body(browser.get("/console/"))
    assert "Workers (1)" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and HOSTILE not in page
    assert "urgent, sms" in page and "redis://:***@redis.internal:6379/0" in page
    assert "hunter2" not in page and "gone-host" not in page
