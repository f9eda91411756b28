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
from dramatiq.common import current_millis, dq_name

logger = logging.getLogger("jobordre.recovery")


def heartbeats_key(namespace: str) -> str:
    """Dramatiq's sorted set of broker ids by their last heartbeat, in ms since the epoch."""
    return f"{namespace}:__heartbeats__"


def acks_key(namespace: str, worker_id: str, queue: str) -> str:
    """Dramatiq's set of the messages a worker fetched from a queue and has not acked."""
    return f"{namespace}:__acks__.{worker_id}.{queue}"


def all_queues(queues: Iterable[str]) -> list[str]:
    """Each queue and its delay queue, as Dramatiq keeps them in Redis."""
    names: list[str] = []
    for queue in sorted(queues):
        names += [queue, dq_name(queue)]
    return names


def run_maintenance(broker: RedisBroker, queues: Iterable[str]) -> int:
    """Beat for ``broker`` and requeue dead workers' messages; returns how many came back."""
    namespace: str = broker.namespace
    now = current_millis()
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
    dispatch = broker.scripts["dispatch"]
    for queue in names:
        # "qsize" changes nothing; do_maintenance=1 forces the pass the stock broker
        # leaves to chance.
        dispatch(
            args=[
                "qsize",
                now,
                queue,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                1,
                broker._max_unpack_size(),  # type: ignore[no-untyped-call]
            ],
            keys=[namespace],
        )
    if held:
        logger.warning(
            "requeued %d unacked messages of %d dead worker(s): %s", held, len(dead), dead
        )
    return held
