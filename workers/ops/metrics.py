"""The Prometheus endpoint of a worker (``jobordre worker --metrics-port N``).

Job metrics under Dramatiq's own names (as its Prometheus middleware exports them, but
from this process's private registry, so no multiprocess directory is needed), plus the
domain's, read at scrape time: orders by status, placements by status, dead letters,
outbox backlog, and the queue depths of :mod:`workers.ops.queues`. Process i of
``--processes N`` serves port ``N + i``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared import eventlog
from shared.errors import Unavailable
from shared.settings import Settings
from shared.store.sqlite import SqliteTx
from workers.broker import resolve_redis_url

logger = logging.getLogger("jobordre.metrics")

#: Dramatiq's duration buckets, in milliseconds.
DURATION_BUCKETS_MS = (
    5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, 30000, 60000,
    600000, 900000, float("inf"),
)  # fmt: skip
LABELS = ("queue_name", "actor_name")


class WorkerMetrics:
    """The job counters of one worker process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.total = Counter(
            "dramatiq_messages", "The total number of messages processed.", LABELS, registry=r
        )
        self.errors = Counter(
            "dramatiq_message_errors",
            "The total number of errored messages.",
            LABELS,
            registry=r,
        )
        self.retries = Counter(
            "dramatiq_message_retries",
            "The total number of retried messages.",
            LABELS,
            registry=r,
        )
        self.rejects = Counter(
            "dramatiq_message_rejects",
            "The total number of dead-lettered messages.",
            LABELS,
            registry=r,
        )
        self.skipped = Counter(
            "jobordre_messages_skipped",
            "Messages skipped (too old) instead of processed.",
            LABELS,
            registry=r,
        )
        self.inprogress = Gauge(
            "dramatiq_messages_inprogress",
            "The number of messages in progress.",
            LABELS,
            registry=r,
        )
        self.durations = Histogram(
            "dramatiq_message_duration_milliseconds",
            "The time spent processing messages.",
            LABELS,
            buckets=DURATION_BUCKETS_MS,
            registry=r,
        )

    def started(self, queue: str, actor: str) -> None:
        """A job started."""
        self.inprogress.labels(queue, actor).inc()

    def finished(
        self, queue: str, actor: str, duration_ms: float, *, failed: bool, dead: bool
    ) -> None:
        """A job ended: returned, or raised and will be retried, or raised for the last time."""
        self.inprogress.labels(queue, actor).dec()
        self.total.labels(queue, actor).inc()
        self.durations.labels(queue, actor).observe(duration_ms)
        if failed:
            self.errors.labels(queue, actor).inc()
            (self.rejects if dead else self.retries).labels(queue, actor).inc()

    def skipped_message(self, queue: str, actor: str) -> None:
        """A job was skipped instead of run."""
        self.inprogress.labels(queue, actor).dec()
        self.skipped.labels(queue, actor).inc()

    def serve(self, settings: Settings, port: int) -> None:
        """Serve ``/metrics`` on ``port`` (all interfaces) with the domain's metrics too."""
        self.registry.register(DomainCollector(settings))
        try:
            start_http_server(port, registry=self.registry)
        except OSError as error:
            raise Unavailable(
                f"cannot serve metrics on port {port} ({error.strerror}); choose another "
                "--metrics-port (process i of --processes N uses port + i)"
            ) from None
        logger.info("metrics on port %d", port)


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


class DomainCollector(Collector):
    """Domain and queue gauges, read from the store and Redis at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        """One scrape: read-only queries, each cheap (indexed or small tables)."""
        yield from self._store_metrics()
        yield from self._queue_metrics()

    def _store_metrics(self) -> Iterator[Metric]:
        uri = f"file:{self.settings.db_path}?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=2)
        except sqlite3.Error as error:
            logger.warning("metrics: cannot open the store: %s", error)
            return
        try:
            for name, help_text, table in (
                ("jobordre_orders", "Job orders by status.", "orders"),
                ("jobordre_placements", "Placements by the person's status.", "placements"),
            ):
                family = GaugeMetricFamily(name, help_text, labels=["status"])
                for status, n in conn.execute(
                    f"SELECT status, COUNT(*) FROM {table} GROUP BY status"  # noqa: S608
                ):
                    family.add_metric([status], n)
                yield family
            family = GaugeMetricFamily(
                "jobordre_dead_letters", "Dead letters not retried yet.", labels=["source"]
            )
            for source, n in conn.execute(
                "SELECT source, COUNT(*) FROM dead_letters WHERE retried_at IS NULL GROUP BY source"
            ):
                family.add_metric([source], n)
            yield family
            if _table_exists(conn, "events"):
                backlog, oldest = eventlog.backlog(SqliteTx(conn))
                yield GaugeMetricFamily(
                    "jobordre_outbox_backlog", "Events not yet relayed to Redis.", value=backlog
                )
                age = 0.0
                if oldest is not None:
                    age = max(time.time() - datetime.fromisoformat(oldest).timestamp(), 0.0)
                yield GaugeMetricFamily(
                    "jobordre_outbox_oldest_age_seconds",
                    "Age of the oldest event not yet relayed.",
                    value=age,
                )
        except sqlite3.Error as error:
            logger.warning("metrics: cannot read the store: %s", error)
        finally:
            conn.close()

    def _queue_metrics(self) -> Iterator[Metric]:
        from workers.ops.queues import broker_snapshot

        try:
            client = redis.Redis.from_url(
                resolve_redis_url(self.settings), socket_connect_timeout=2, socket_timeout=5
            )
            try:
                snap = broker_snapshot(client, self.settings)
            finally:
                client.close()
        except redis.RedisError as error:
            logger.warning("metrics: cannot read the queues: %s", error)
            return
        family = GaugeMetricFamily(
            "jobordre_queue_messages", "Messages per queue and state.", labels=["queue", "state"]
        )
        age = GaugeMetricFamily(
            "jobordre_queue_oldest_age_seconds",
            "Age of the oldest ready message.",
            labels=["queue"],
        )
        for queue in snap["queues"]:
            for state in ("ready", "delayed", "in_flight", "dead_broker"):
                family.add_metric([queue["name"], state], queue[state])
            age.add_metric([queue["name"]], queue["oldest_age_s"] or 0.0)
        yield family
        yield age
        yield GaugeMetricFamily(
            "jobordre_workers_alive",
            "Workers whose heartbeat is fresh.",
            value=sum(1 for w in snap["workers"] if w["alive"]),
        )
