"""The Prometheus endpoint of a worker (``jobordre worker --metrics-port N``).

Job metrics under Dramatiq's own names (as its Prometheus middleware exports them, but
from this process's private registry, so no multiprocess directory is needed), plus the
domain's, read at scrape time: orders by status, placements by status, dead letters,
outbox backlog, the queue depths of :mod:`workers.ops.queues` and the workers of every
host. Process i of ``--processes N`` serves port ``N + i``.

Every status and dead-letter source is served, with 0 where there are none: a series that
appears only with its first dead letter cannot be compared with its past, and alert rules
on ``delta`` or ``offset`` would miss exactly the first one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared import eventlog
from shared.errors import Unavailable
from shared.models import OrderStatus, PlacementStatus
from shared.settings import Settings
from shared.store import Store, Tx
from workers.ops import registry
from workers.ops.deadletters import existing_postgres, read_only
from workers.transport.broker import resolve_redis_url
from workers.transport.redis_connection import connect_redis

logger = logging.getLogger("jobordre.metrics")

#: Dramatiq's duration buckets, in milliseconds.
DURATION_BUCKETS_MS = (
    5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, 30000, 60000,
    600000, 900000, float("inf"),
)  # fmt: skip
LABELS = ("queue_name", "actor_name")
#: Where a dead letter came from (the ``source`` column of ``dead_letters``).
DEAD_LETTER_SOURCES = ("rejected", "crashed", "undecodable")


class WorkerMetrics:
    """The job counters of one worker process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # process_start_time_seconds, memory, CPU, open files: of this process.
        ProcessCollector(registry=r)
        info = Gauge(
            "jobordre_worker_info",
            "This worker process: the host name it reports (as in `jobordre queues`), its pid.",
            ("hostname", "pid"),
            registry=r,
        )
        info.labels(socket.gethostname(), str(os.getpid())).set(1)
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

    def declare(self, queue: str, actor: str) -> None:
        """Serve every job series of ``actor`` from the start, at 0.

        ``rate`` and ``increase`` need a sample before the first increment: a counter
        that appears at 1 with the first error hides that error from the alert rules.
        """
        for metric in (self.total, self.errors, self.retries, self.rejects, self.skipped):
            metric.labels(queue, actor)
        self.inprogress.labels(queue, actor)
        self.durations.labels(queue, actor)

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
        """Serve ``/metrics`` on ``JOBORDRE_METRICS_ADDR`` (loopback unless set) and
        ``port``, with the domain's metrics too."""
        self.registry.register(DomainCollector(settings))
        addr = settings.metrics_addr
        try:
            start_http_server(port, addr=addr, registry=self.registry)
        except OSError as error:
            raise Unavailable(
                f"cannot serve metrics on port {port} of {addr} ({error.strerror}); choose "
                "another --metrics-port (process i of --processes N uses port + i) or "
                "JOBORDRE_METRICS_ADDR"
            ) from None
        logger.info("metrics on %s port %d", addr, port)


def _labelled_gauge(name: str, help_text: str, label: str, counts: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for value, n in sorted(counts.items()):
        family.add_metric([value], n)
    return family


def store_metrics(tx: Tx) -> Iterator[Metric]:
    """The store's gauges, read in ``tx`` (either engine): orders and placements by status,
    dead letters not retried yet by source, the outbox backlog and its oldest event's age."""
    for name, help_text, table, known in (
        ("jobordre_orders", "Job orders by status.", "orders", tuple(OrderStatus)),
        (
            "jobordre_placements",
            "Placements by the person's status.",
            "placements",
            tuple(PlacementStatus),
        ),
    ):
        counts = dict.fromkeys(map(str, known), 0)
        rows = tx.execute(f"SELECT status, COUNT(*) FROM {table} GROUP BY status")  # noqa: S608
        counts.update((str(row[0]), int(row[1])) for row in rows.fetchall())
        yield _labelled_gauge(name, help_text, "status", counts)
    counts = dict.fromkeys(DEAD_LETTER_SOURCES, 0)
    rows = tx.execute(
        "SELECT source, COUNT(*) FROM dead_letters WHERE retried_at IS NULL GROUP BY source"
    )
    counts.update((str(row[0]), int(row[1])) for row in rows.fetchall())
    yield _labelled_gauge(
        "jobordre_dead_letters", "Dead letters not retried yet.", "source", counts
    )
    if not tx.columns("events"):
        return  # a store from before the outbox: nothing waits in it
    backlog, oldest = eventlog.backlog(tx)
    yield GaugeMetricFamily(
        "jobordre_outbox_backlog", "Events not yet relayed to Redis.", value=backlog
    )
    age_s = 0.0
    if oldest is not None:
        age_s = max(time.time() - datetime.fromisoformat(oldest).timestamp(), 0.0)
    yield GaugeMetricFamily(
        "jobordre_outbox_oldest_age_seconds",
        "Age of the oldest event not yet relayed.",
        value=age_s,
    )


class DomainCollector(Collector):
    """Domain and queue gauges, read from the store and Redis at each scrape.

    The store is read through the engine-neutral interface (:mod:`shared.store`), so the
    same gauges come from SQLite and PostgreSQL. Like every read-only ops command it never
    creates a store: a missing SQLite file or a database without jobordre's schema gives
    no store gauges (and a warning in the log), not an empty store.
    """

    def __init__(
        self, settings: Settings, clock_ms: Callable[[], float] = lambda: time.monotonic() * 1000
    ) -> None:
        self.settings = settings
        # PostgreSQL: one small pool kept between scrapes, not a new connection (and a
        # schema check) at every scrape. SQLite: a read-only connection per scrape is cheap.
        self._postgres: Store | None = None
        self._opening = threading.Lock()
        #: The store's figures as last read, and when (``clock_ms``): they serve every
        #: scrape for ``metrics_cache_ms``, so scrapes (anyone's, the endpoint has no
        #: authentication) cost the store at most one read per period.
        self._clock_ms = clock_ms
        self._cached: tuple[float, list[Metric]] | None = None
        self._reading = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        """One scrape: read-only queries, each cheap (indexed or small tables)."""
        yield from self._store_metrics()
        yield from self._queue_metrics()

    def close(self) -> None:
        """Close the PostgreSQL pool, if one was opened."""
        with self._opening:
            if self._postgres is not None:
                self._postgres.close()
                self._postgres = None

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        if not self.settings.database_url:
            with read_only(self.settings) as tx:
                yield tx
            return
        with self._opening:
            if self._postgres is None:
                self._postgres = existing_postgres(self.settings, pool_size=1)
            found = self._postgres
        with found.read() as tx:
            yield tx

    def _store_metrics(self) -> Iterator[Metric]:
        yield from self._store_figures()

    def _store_figures(self) -> list[Metric]:
        # One scrape reads at a time; the scrapes meanwhile take its figures.
        with self._reading:
            cached = self._cached
            if cached is not None and self._clock_ms() - cached[0] < self.settings.metrics_cache_ms:
                return cached[1]
            try:
                with self._read() as tx:
                    # Everything in the one snapshot: a scrape's gauges agree with each other.
                    families = list(store_metrics(tx))
            except Exception as error:
                # Whatever the store says (gone, locked, not a jobordre store), the job and
                # queue metrics of this scrape are still served.
                logger.warning("metrics: cannot read the store: %s", error)
                return []
            self._cached = (self._clock_ms(), families)
            return families

    def _queue_metrics(self) -> Iterator[Metric]:
        from workers.ops.queues import broker_snapshot

        try:
            client = connect_redis(
                resolve_redis_url(self.settings), socket_connect_timeout=2, socket_timeout=5
            )
            try:
                snap = broker_snapshot(client, self.settings)
                starts = registry.starts(client, self.settings.redis_prefix)
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
        per_host = GaugeMetricFamily(
            "jobordre_host_workers",
            "Registered worker processes per host, alive or dead (not yet forgotten).",
            labels=["hostname", "state"],
        )
        hosts: dict[tuple[str, str], int] = {}
        for worker in snap["workers"]:
            key = (worker["host"], "alive" if worker["alive"] else "dead")
            hosts[key] = hosts.get(key, 0) + 1
        for hostname in sorted({w["host"] for w in snap["workers"]}):
            for state in ("alive", "dead"):
                per_host.add_metric([hostname, state], hosts.get((hostname, state), 0))
        yield per_host
        started = CounterMetricFamily(
            "jobordre_worker_starts",
            "Worker processes started per host, as long as Redis keeps the count.",
            labels=["hostname"],
        )
        for hostname, n in sorted(starts.items()):
            started.add_metric([hostname], n)
        yield started
