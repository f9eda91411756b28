"""The ops agent inside every worker process: a Dramatiq middleware plus two threads.

The middleware times every job (for ``jobordre queues`` and the Prometheus endpoint). The
ops thread, once a second, writes those figures to Redis and refreshes the worker's entry
(host, pid, jobs running); every ``maintenance_interval_ms`` it beats and runs the broker
maintenance that brings a dead worker's messages back (see :mod:`workers.ops.recovery`).
The retention thread purges dead letters older than ``dead_letter_retention_days`` at
start and then hourly; it is apart because a purge may wait on the store's write lock,
and the beat must never wait.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from shared.settings import Settings
from shared.store import open_store
from workers.ops import deadletters, registry
from workers.ops.metrics import WorkerMetrics
from workers.ops.recovery import run_maintenance
from workers.ops.stats import JobStats

logger = logging.getLogger("jobordre.ops")

#: How often figures go to Redis, in seconds.
FLUSH_INTERVAL_S = 1.0
#: How often the workers purge dead letters past their retention, in seconds.
RETENTION_INTERVAL_S = 3600.0


class OpsAgent(dramatiq.Middleware):
    """Times jobs, and runs the worker's beat, maintenance and retention thread."""

    def __init__(self, settings: Settings, threads: int) -> None:
        self.settings = settings
        self.threads = threads
        self.stats = JobStats()
        self.metrics = WorkerMetrics() if settings.metrics_port is not None else None
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._broker: RedisBroker | None = None
        self._info: dict[str, Any] = {}

    @property
    def running(self) -> int:
        """Jobs running in this process right now."""
        with self._lock:
            return len(self._started)

    def install(self, broker: dramatiq.Broker) -> None:
        """Add the agent to ``broker`` first of all its middleware.

        Dramatiq runs before-hooks in list order and after-hooks in reverse. First, the
        agent's before-hook runs ahead of ``AgeLimit`` (so a message it skips was seen
        starting and is counted as skipped), and its after-hook runs after ``Retries``
        has decided (so ``message.failed`` tells a final failure from one to be retried).
        """
        broker.add_middleware(self, before=type(broker.middleware[0]))

    # --- job timing ---------------------------------------------------------------------

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy
    ) -> None:
        with self._lock:
            self._started[message.message_id] = time.perf_counter()
        if self.metrics is not None:
            self.metrics.started(message.queue_name, message.actor_name)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            started = self._started.pop(message.message_id, None)
        if started is None:
            return
        duration_ms = (time.perf_counter() - started) * 1000
        self.stats.record(message.actor_name, exception is None, duration_ms)
        if self.metrics is not None:
            self.metrics.finished(
                message.queue_name,
                message.actor_name,
                duration_ms,
                failed=exception is not None,
                dead=bool(message.failed),
            )

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        with self._lock:
            started = self._started.pop(message.message_id, None)
        if started is not None and self.metrics is not None:
            self.metrics.skipped_message(message.queue_name, message.actor_name)

    # --- the thread ---------------------------------------------------------------------

    def serve_metrics(self) -> None:
        """Serve the Prometheus endpoint if a port is set; :class:`Unavailable` if taken.

        Called before the worker starts: Dramatiq logs and swallows errors raised in
        middleware hooks, and a worker must not run without the metrics it was asked for.
        """
        if self.metrics is not None and self.settings.metrics_port is not None:
            self.metrics.serve(self.settings, self.settings.metrics_port)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        assert isinstance(broker, RedisBroker)
        self._broker = broker
        if self.metrics is not None:
            for name in broker.get_declared_actors():
                actor = broker.get_actor(name)
                self.metrics.declare(actor.queue_name, actor.actor_name)
        self._info = registry.worker_info(broker.broker_id, self.threads, time.time())
        try:
            registry.record_start(self._client, self.settings.redis_prefix, self._info)
            self._tick_maintenance()  # registered and beating before the first job
        except redis.RedisError as error:
            # Dramatiq's consumers wait for Redis to come back; so does the ops thread.
            logger.warning("ops agent: Redis failed at start (%s); trying again", error)
        self._thread = threading.Thread(target=self._loop, name="jobordre-ops", daemon=True)
        self._thread.start()
        # Apart from the beat: a purge waits on the store's write lock, and a worker that
        # stopped beating meanwhile would be taken for dead and its messages run twice.
        threading.Thread(
            target=self._retention_loop, name="jobordre-retention", daemon=True
        ).start()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # The beat goes on while running jobs finish (up to worker_shutdown_ms, longer than
        # the heartbeat timeout): a stopping worker must not be taken for dead.
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.stats.flush(self._client, self.settings.redis_prefix)
            registry.unregister(self._client, self.settings.redis_prefix, self._info["id"])
        except redis.RedisError as error:
            logger.warning("could not unregister the worker: %s", error)

    @property
    def _client(self) -> redis.Redis:
        assert self._broker is not None
        client: redis.Redis = self._broker.client
        return client

    def _tick_maintenance(self) -> None:
        assert self._broker is not None
        run_maintenance(self._broker, self._broker.get_declared_queues())
        registry.beat(self._client, self.settings.redis_prefix, self._info, self.running)

    def _tick_retention(self) -> None:
        store = open_store(self.settings)
        try:
            purged = deadletters.purge_expired(store, self.settings)
        finally:
            store.close()
        if purged["purged"]:
            logger.info("purged %d dead letters past retention", purged["purged"])

    def _loop(self) -> None:
        interval_s = self.settings.maintenance_interval_ms / 1000
        next_maintenance = time.monotonic() + interval_s
        while not self._stop.wait(min(FLUSH_INTERVAL_S, interval_s)):
            # A failing step must not stop the thread: log and try again next time.
            try:
                self.stats.flush(self._client, self.settings.redis_prefix)
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + interval_s
                    self._tick_maintenance()
                else:  # keeps "running" in `jobordre queues` at most a second old
                    registry.beat(
                        self._client, self.settings.redis_prefix, self._info, self.running
                    )
            except redis.RedisError as error:
                logger.warning("ops agent: Redis failed (%s); trying again", error)
            except Exception:
                logger.exception("ops agent: beat or maintenance failed; trying again")

    def _retention_loop(self) -> None:
        while True:
            try:
                self._tick_retention()
            except Exception:
                logger.exception("ops agent: dead-letter retention failed; trying next hour")
            if self._stop.wait(RETENTION_INTERVAL_S):
                return
