"""Running workers: one process (N threads for queries, one for write commands in batches,
see :mod:`workers.worker.command_batches`), or several such processes.

SIGTERM or SIGINT stops a worker gracefully: running jobs and the running batch of write
commands get ``worker_shutdown_ms`` to finish, and prefetched messages go back to Redis; a
second signal stops it at once (the messages it held come back through Dramatiq's
heartbeat recovery).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

import dramatiq
import redis

from shared.foundation import Foundation
from shared.redaction import RedactingFormatter
from shared.settings import Settings
from shared.store import Store, open_store
from workers.client.credentials import foundation_key, system_key
from workers.ops.agent import OpsAgent
from workers.transport.broker import QueriesWorker, build_worker_broker
from workers.transport.redis_connection import connect_redis
from workers.worker.actors import Runtime, declare_actors
from workers.worker.command_batches import CommandBatches
from workers.worker.relay import Relay
from workers.worker.schedule import request_expiry_forever

logger = logging.getLogger("jobordre.worker")


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr through the CPR-redacting formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One bare JSON line per job, for log shippers; redacted like everything else.
    jobs = logging.StreamHandler(sys.stderr)
    jobs.setFormatter(RedactingFormatter("%(message)s"))
    job_log = logging.getLogger("jobordre.jobs")
    job_log.handlers[:] = [jobs]
    job_log.propagate = False


#: Set when the process stops; background loops end on it.
_stopping = threading.Event()


def _background(target: Callable[..., None], *args: object, name: str) -> None:
    threading.Thread(
        target=target, args=(*args, _stopping), name=f"jobordre-{name}", daemon=True
    ).start()


def end_stuck_writers_forever(store: Store, stop: threading.Event) -> None:
    """Every :attr:`Store.stuck_writer_check_ms`, end the store sessions stuck mid-transaction
    waiting for their client (another host's worker frozen or cut off while it was sending,
    holding its locks), until ``stop`` is set; nothing where the engine has none."""
    interval_ms = store.stuck_writer_check_ms
    if interval_ms <= 0:
        return
    while not stop.wait(interval_ms / 1000):
        try:
            ended = store.end_stuck_writers()
        except Exception as error:  # the next look tries again
            logger.warning("cannot look for writers stuck mid-transaction: %s", error)
            continue
        if ended:
            logger.warning(
                "ended %d database session(s) stuck mid-transaction, waiting for their "
                "worker (frozen or cut off while sending), processes %s: their locks are "
                "free again and their commands are retried",
                len(ended),
                ended,
            )


def start_worker(settings: Settings, url: str, threads: int) -> dramatiq.Worker:
    """Build the runtime and start a Dramatiq worker in this process; returns it running.
    Idle consumers wait on their queues (workers/transport/broker.py), idle threads on their
    work."""
    broker, outbound = build_worker_broker(settings, url, wait_ms=settings.worker_poll_ms)
    store = open_store(settings)
    client = connect_redis(url, socket_connect_timeout=5, socket_timeout=10)
    foundation = Foundation(
        store,
        max_age_ms=settings.signature_max_age_ms,
        max_batch=settings.group_commit_max_writes,
        max_follows=settings.max_follows_per_caseworker,
        foundation_key=foundation_key(settings),
    )
    runtime = Runtime(
        foundation=foundation,
        # The broker's: a job's reply and its ack go out together, reply first.
        replies=outbound,
        settings=settings,
        relay=Relay(store, client, settings, writes=foundation.writes),
    )
    declare_actors(broker, runtime)
    try:
        # Before the first job: a store restored from a backup gets a new log identity
        # before it writes an event (workers/worker/relay.py).
        runtime.relay.check_identity()
    except redis.RedisError:
        logger.warning("cannot check the event log against Redis yet; the relay will")
    _background(runtime.relay.sweep_forever, settings.relay_interval_ms, name="relay")
    _background(request_expiry_forever, settings, url, system_key(store), name="expiry")
    _background(end_stuck_writers_forever, store, name="stuck-writers")
    # Job timing, heartbeats, fast recovery of dead workers' messages, dead-letter
    # retention and the metrics endpoint (workers/ops/agent.py).
    agent = OpsAgent(settings, threads)
    agent.serve_metrics()
    agent.install(broker)
    # Write commands in batches, one thread; queries on Dramatiq's worker threads.
    broker.add_middleware(CommandBatches(runtime))
    # Dramatiq's own CLI announces a worker process's boot, and the job time limit's watch
    # starts on it: without this, no job's time limit is enforced.
    broker.emit_after("process_boot")
    worker = QueriesWorker(broker, worker_threads=threads, worker_timeout=settings.worker_poll_ms)
    worker.start()
    logger.info(
        "worker started: %d threads for queries, one for commands in batches of up to %d, "
        "queues %s",
        threads,
        settings.group_commit_max_writes,
        sorted(broker.get_declared_queues()),
    )
    return worker


def stop_background() -> None:
    """End this process's background loops (relay sweep, scheduler)."""
    _stopping.set()


def wait_for_stop(
    on_first: Callable[[], None],
    on_second: Callable[[], None] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Block until SIGTERM/SIGINT; run ``on_first`` then. A second signal runs
    ``on_second`` and exits at once. ``on_ready`` runs once the signals are handled (a
    process announcing itself there can be stopped gracefully from that moment)."""
    stopping = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            logger.warning("second signal: stopping at once")
            if on_second is not None:
                on_second()
            os._exit(1)
        stopping.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    if on_ready is not None:
        on_ready()
    while not stopping.wait(0.5):
        pass
    stop_background()
    on_first()


def _serve(settings: Settings, url: str, threads: int) -> None:
    configure_logging()
    worker = start_worker(settings, url, threads)
    wait_for_stop(lambda: worker.stop(timeout=settings.worker_shutdown_ms))
    logger.info("worker stopped")


def _nth_process(settings: Settings, i: int) -> Settings:
    """Process i's settings: its own metrics port (``metrics_port + i``), if any."""
    if settings.metrics_port is None:
        return settings
    return settings.model_copy(update={"metrics_port": settings.metrics_port + i})


def run_processes(target: Callable[..., None], per_process: list[tuple[object, ...]]) -> int:
    """Run ``target(*args)`` in one spawned process per entry until SIGTERM/SIGINT.

    The first signal is passed on to every process (they stop gracefully); a second one
    too, and the processes stop at once. Returns 0 if every process exited cleanly.
    """
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=target, args=args, name=f"jobordre-worker-{i}")
        for i, args in enumerate(per_process)
    ]
    for child in children:
        child.start()

    def signal_children() -> None:
        # A child's own handler takes a first signal as "stop gracefully", a second as
        # "stop at once", just as for a single process.
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    def stop_children() -> None:
        signal_children()
        for child in children:
            child.join()

    configure_logging()
    wait_for_stop(stop_children, signal_children)
    return 0 if all(child.exitcode == 0 for child in children) else 1


def run_workers(settings: Settings, url: str, processes: int, threads: int) -> int:
    """Run ``processes`` worker processes of ``threads`` threads until stopped; exit code."""
    if processes == 1:
        _serve(settings, url, threads)
        return 0
    return run_processes(
        _serve, [(_nth_process(settings, i), url, threads) for i in range(processes)]
    )
