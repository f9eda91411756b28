"""The baseline's worker: a no-op Dramatiq actor, served like ``jobordre worker`` serves.

Same broker construction (:func:`workers.transport.broker.build_broker`, so the same middleware),
same poll interval and the same process/thread layout as the real workers; only the actor
does nothing. Run as ``python -m workers.bench.noop URL PROCESSES THREADS``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import dramatiq

from shared.settings import get_settings
from workers.transport.broker import build_worker_broker
from workers.worker.runner import configure_logging, run_processes, wait_for_stop

#: The queue and actor of the no-op baseline; never used by jobordre itself.
NOOP_QUEUE = "jobordre.bench-noop"
NOOP_ACTOR = "bench_noop"

logger = logging.getLogger("jobordre.bench")


def declare(broker: dramatiq.Broker) -> dramatiq.Actor[Any, Any]:
    """Declare the no-op actor on ``broker``."""

    def noop(payload: Any) -> None:
        """Does nothing: what Dramatiq and Redis cost without jobordre."""

    return dramatiq.actor(actor_name=NOOP_ACTOR, queue_name=NOOP_QUEUE, broker=broker)(noop)


def _serve(url: str, threads: int) -> None:
    configure_logging()
    settings = get_settings()
    broker, _ = build_worker_broker(settings, url, wait_ms=settings.worker_poll_ms)
    declare(broker)
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=settings.worker_poll_ms)
    worker.start()
    logger.info("noop worker started: %d threads", threads)
    wait_for_stop(lambda: worker.stop(timeout=5_000))


def main(argv: list[str]) -> int:
    """Serve the no-op actor in ``processes`` processes of ``threads`` threads until SIGTERM."""
    url, processes, threads = argv[0], int(argv[1]), int(argv[2])
    if processes == 1:
        _serve(url, threads)
        return 0
    return run_processes(_serve, [(url, threads)] * processes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
