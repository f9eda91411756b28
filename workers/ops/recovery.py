"""Fast recovery from a dead worker: heartbeats and broker maintenance on a timer.

Dramatiq's Redis broker puts a dead worker's unacked messages back on their queues only
during "maintenance", which runs on about 1 in 1,000 broker calls, and only once the worker
has been silent for the heartbeat timeout. A worker's heartbeat is refreshed only by its
own broker calls, so a worker whose threads are all busy on long jobs falls silent too.

Every jobordre worker therefore runs :func:`run_maintenance` every
``maintenance_interval_ms``: the call beats for the worker (so a busy worker stays alive)
and forces a maintenance pass on each queue (so a dead worker's messages come back within
``heartbeat_timeout_ms + maintenance_interval_ms`` of its last beat, 25 s by default). It
goes through Dramatiq's own dispatch script, so it does exactly what the stock maintenance
does, with the same Lua atomicity.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import cast

from dramatiq.brokers.redis import RedisBroker

from workers.transport.dramatiq_redis import (
    acks_key,
    all_queues,
    dispatch,
    heartbeats_key,
    now_ms,
)

logger = logging.getLogger("jobordre.recovery")


def run_maintenance(broker: RedisBroker, queues: Iterable[str]) -> int:
    """Beat for ``broker`` and requeue dead workers' messages; returns how many came back."""
    namespace: str = broker.namespace
    now = now_ms()
    names = all_queues(queues)
    members = cast(
        "list[bytes]",
        broker.client.zrangebyscore(heartbeats_key(namespace), 0, now - broker.heartbeat_timeout),
    )
    dead = [member.decode() for member in members]
    held = 0
    if dead:
        pipe = broker.client.pipeline(transaction=False)
        for worker_id in dead:
            for queue in names:
                pipe.scard(acks_key(namespace, worker_id, queue))
        held = sum(int(n) for n in pipe.execute())
    for queue in names:
        # "qsize" changes nothing; the maintenance pass is forced, not left to chance.
        dispatch(broker, "qsize", queue, maintenance=True)
    if held:
        logger.warning(
            "requeued %d unacked messages of %d dead worker(s): %s", held, len(dead), dead
        )
    return held
