"""The Celery application: queues, routing and the settings that keep deliveries safe.

The broker is a doorbell and the database is the truth: tasks carry delivery ids only, a delivery
is claimed in the database before any provider call, and a periodic sweep re-enqueues what a lost
worker left behind. So `acks_late` with `task_reject_on_worker_lost` may redeliver a task, and
that is harmless.
"""

from __future__ import annotations

from functools import cache

from celery import Celery
from kombu import Queue

from broadcaster.core.config import Settings, load_district
from broadcaster.delivery import broker_transport, embedded_redis

# Before any connection: a broker restart must not stop a worker (see broker_transport).
broker_transport.register()

# Queues. `urgent` has workers of its own (see deploy/): a priority flag on a shared queue would
# still wait behind a fan-out already taken.
URGENT, SOCIAL, SMS, WEB, DEFAULT = "urgent", "social", "sms", "web", "default"
QUEUES = (URGENT, SOCIAL, SMS, WEB, DEFAULT)
# Calls share the texts' queue: the same provider, and the workers deploy/ runs for it. So do
# e-mails: like texts and calls they reach each family, written by the expansion task that runs
# on this queue; each batch's sends run on the worker's call threads with the SMTP timeout, so a
# slow mail server holds back its own batch, not the texts'; and a queue of their own would be
# one that a deployment without a worker for it (every deploy/ file until it is edited) never
# sends, silently.
CHANNEL_QUEUE = {
    "x": SOCIAL,
    "facebook": SOCIAL,
    "sms": SMS,
    "voice": SMS,
    "email": SMS,
    "web": WEB,
    # Staff chat rooms and lists: a post per URL of the account, a handful per message like X and
    # Facebook, to web services like theirs: the social workers every deploy/ file runs.
    "apprise": SOCIAL,
}

# Task names.
SEND = "broadcaster.send_deliveries"
# Writes an approved message's texts in pages (expansion.py); sent to the texts' own queue.
EXPAND = "broadcaster.expand_audience"
SWEEP = "broadcaster.sweep"
DISPATCH_DUE = "broadcaster.dispatch_due"
# Tells approvers a message waits for them (approvals.py): on the social queue, or urgent.
NOTIFY_APPROVERS = "broadcaster.notify_approvers"
# Tells the staff rooms a family replied (inbox_forward.py): on the social queue.
FORWARD_INBOX = "broadcaster.forward_inbox"
# Rewrites the public site's static files (its body is web/publish_task.py: delivery sends it by
# name and never imports web).
PUBLISH_SITE = "broadcaster.publish_site"
# Signs a checkpoint of the ledger (records/checkpoint_task.py; sent by name, as PUBLISH_SITE).
SIGN_CHECKPOINT = "broadcaster.sign_checkpoint"

CONFIG = dict(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    task_default_queue=DEFAULT,
    task_queues=[Queue(name) for name in QUEUES],
    task_routes={
        SWEEP: {"queue": DEFAULT},
        DISPATCH_DUE: {"queue": DEFAULT},
        PUBLISH_SITE: {"queue": WEB},
        SIGN_CHECKPOINT: {"queue": DEFAULT},
    },
    # A task still unacknowledged after this long is handed out again; ours take seconds.
    broker_transport_options={"visibility_timeout": 600},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)
app = Celery(
    "broadcaster",
    include=[
        "broadcaster.delivery.tasks",
        "broadcaster.delivery.approval_tasks",
        "broadcaster.delivery.inbox_tasks",
        "broadcaster.web.publish_task",
        "broadcaster.records.checkpoint_task",
    ],
)
app.conf.update(CONFIG)


def broker_url(settings: Settings) -> str:
    """The configured broker, or the embedded Redis for this home (started if need be)."""
    return settings.broker_url or embedded_redis.ensure_running(settings.home)


def configure(settings: Settings | None = None) -> Celery:
    """The worker's app, pointed at the broker, with the beat's schedule. A worker process serves
    one deployment."""
    settings = settings or Settings()
    app.conf.broker_url = broker_url(settings)  # type: ignore[misc]  # celery-types call it read-only; it is not
    app.conf.beat_schedule = {
        "sweep": {"task": SWEEP, "schedule": settings.sweep_every},
        # Scheduled messages go out at most this long after their send_at (plus the task's run).
        "dispatch-due": {"task": DISPATCH_DUE, "schedule": settings.schedule_every},
    }
    district = load_district(settings.config_path)
    if district.signing_key_path is not None:
        # At least this often while entries are added (a run with nothing new signs nothing).
        app.conf.beat_schedule["checkpoint"] = {
            "task": SIGN_CHECKPOINT,
            "schedule": district.records.checkpoint_every_minutes * 60.0,
        }
    if district.site_dir is not None:
        # Pages that list current alerts change when one expires: a cheap check of the store's
        # state, which republishes only when it changed (web/publish_task.py).
        app.conf.beat_schedule["publish-site"] = {
            "task": PUBLISH_SITE,
            "schedule": settings.schedule_every,
        }
    return app


@cache
def _client(url: str) -> Celery:
    client = Celery("broadcaster-client", broker=url, set_as_current=False)
    client.conf.update(CONFIG)
    return client


def client_for(settings: Settings) -> Celery:
    """An app that only sends, one per broker: a long-lived process (a test run, a web app)
    may serve several homes, and an app's connection pool is bound to its first broker."""
    return _client(broker_url(settings))


def run_worker(argv: list[str]) -> int:
    """Run `celery worker ARGV` on this module's app and return its exit code. Celery's
    `worker_main` drops that code, so a worker stopped by an unrecoverable error exited 0 and
    systemd or compose would not restart it."""
    from celery.bin.celery import celery as celery_command

    code = celery_command.main(args=["--app", f"{__name__}:app", *argv], standalone_mode=False)
    return code if isinstance(code, int) else 0
