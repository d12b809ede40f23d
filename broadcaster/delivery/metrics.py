"""Prometheus metrics: what a worker did (counters and provider latency, kept in the worker's
process) and what is waiting now (gauges read from the broker and the database at each scrape,
the same from any process: the web app serves only these).

Labels are channels, outcomes, operations, queues and statuses: never a recipient, an account's
credential or a URL, so an export holds no personal data or secret.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import func, select, text

from broadcaster.core import db
from broadcaster.core.config import Settings
from broadcaster.core.errors import BadInput
from broadcaster.core.models import Delivery, utcnow
from broadcaster.core.states import OPEN, DeliveryStatus
from broadcaster.delivery import embedded_redis
from broadcaster.delivery.celery_app import QUEUES

if TYPE_CHECKING:
    from broadcaster.delivery.jobs import Result

DELIVERIES = Counter(
    "broadcaster_deliveries",
    "Delivery outcomes this worker recorded, by channel and outcome.",
    ["channel", "outcome"],
)
PROVIDER_LATENCY = Histogram(
    "broadcaster_provider_latency_seconds",
    "Time spent in a provider call (send, lookup or retract), failures included.",
    ["channel", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# What `delivery.record` writes, named as its ledger events are (a `queued` result is a retry).
OUTCOME: dict[str, str] = {DeliveryStatus.QUEUED: "retry"}
# Rows still to be sent; finished rows are the counters' business, and counting only these keeps
# each scrape's query proportional to the work in flight, not to years of history.
# kombu's Redis transport keeps one list per queue and priority step: the plain name holds
# priority 0, `<queue>\x06\x16<step>` the others (kombu.transport.redis.PRIORITY_STEPS).
PRIORITY_SEPARATOR, PRIORITY_STEPS = "\x06\x16", (0, 3, 6, 9)
BROKER_TIMEOUT_S = 1.0
DATABASE_TIMEOUT_MS = 2000


def count_outcomes(results: Iterable[Result]) -> None:
    """Count recorded outcomes; called once they are committed."""
    for result in results:
        deleted = result.job.action == "delete" and result.status == DeliveryStatus.SENT
        outcome = "deleted" if deleted else OUTCOME.get(result.status, result.status)
        DELIVERIES.labels(result.job.channel, outcome).inc()


@contextmanager
def timed(channel: str, operation: str) -> Iterator[None]:
    """Observe a provider call's duration, whether it returns or raises."""
    with PROVIDER_LATENCY.labels(channel, operation).time():
        yield


def queue_lists(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


def broker_client(url: str) -> redis.Redis:
    """A client that gives up quickly: a scrape reports a broker that is down, it does not hang."""
    options: dict[str, Any] = {
        "socket_timeout": BROKER_TIMEOUT_S,
        "socket_connect_timeout": BROKER_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),  # the next scrape is the retry
    }
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=urlsplit(url).path, **options)
    return redis.Redis.from_url(url, **options)


class StateCollector(Collector):
    """Queue depth from the broker, open deliveries and the oldest queued one's age from the
    database, read at each scrape; a source that does not answer reports `_up 0`, not an error."""

    def __init__(self, database_url: str, broker_url: Callable[[], str]) -> None:
        self.database_url = database_url
        self.broker_url = broker_url

    def describe(self) -> list[Metric]:
        # Nothing to declare up front: registering must not query the broker and the database.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._broker()
        yield from self._database()

    def _broker(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("broadcaster_broker_up", "1 when the broker answered this scrape.")
        depth = GaugeMetricFamily(
            "broadcaster_queue_depth",
            "Tasks waiting in each Celery queue (all priority steps).",
            labels=["queue"],
        )
        try:
            client = broker_client(self.broker_url())
            with client.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    for name in queue_lists(queue):
                        pipe.llen(name)
                lengths = pipe.execute()
            client.close()
        except (redis.RedisError, OSError, ValueError):  # down, or an address redis-py refuses
            up.add_metric([], 0)
            yield up
            return
        steps = len(PRIORITY_STEPS)
        for i, queue in enumerate(QUEUES):
            depth.add_metric([queue], sum(lengths[i * steps : (i + 1) * steps]))
        up.add_metric([], 1)
        yield up
        yield depth

    def _database(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("broadcaster_database_up", "1 when the database answered.")
        try:
            rows = self._open_deliveries()
        except Exception:  # any driver's error: the scrape reports it rather than failing
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        by_status = GaugeMetricFamily(
            "broadcaster_open_deliveries",
            "Deliveries not yet finished, by status.",
            labels=["status"],
        )
        counts = {status: count for status, count, _ in rows}
        for status in OPEN:
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        oldest = next((first for status, _, first in rows if status == DeliveryStatus.QUEUED), None)
        age = max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0
        yield GaugeMetricFamily(
            "broadcaster_oldest_queued_delivery_age_seconds",
            "Seconds since the oldest delivery still queued was dispatched; 0 when none is.",
            value=age,
        )

    def _open_deliveries(self) -> list[tuple[str, int, dt.datetime | None]]:
        with db.read_scope(self.database_url) as session:
            if session.get_bind().dialect.name == "postgresql":
                # A slow scrape is dropped, never left holding a connection.
                session.execute(text(f"SET LOCAL statement_timeout = {DATABASE_TIMEOUT_MS}"))
            rows = session.execute(
                select(Delivery.status, func.count(), func.min(Delivery.created_at))
                .where(Delivery.status.in_(OPEN))
                .group_by(Delivery.status)
            ).all()
        return [(status, count, first) for status, count, first in rows]


def web_broker_url(settings: Settings) -> str:
    """The broker the deployment uses, without starting the embedded one just to look at it."""
    return settings.broker_url or embedded_redis.broker_url(settings.home)


def state_registry(settings: Settings) -> CollectorRegistry:
    """The web app's registry: the shared gauges only. Under gunicorn each request may reach a
    different process, so per-process counters there would jump around; the workers keep those."""
    registry = CollectorRegistry()
    registry.register(
        StateCollector(settings.effective_database_url, lambda: web_broker_url(settings))
    )
    return registry


def serve_worker_metrics(settings: Settings, broker_url: str, host: str, port: int) -> None:
    """A worker's /metrics: its counters and latencies, the process's own, and the shared gauges."""
    try:
        start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise BadInput(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): "
            "choose another --metrics-port or --metrics-host"
        ) from None
    REGISTRY.register(StateCollector(settings.effective_database_url, lambda: broker_url))
