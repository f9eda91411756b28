"""Dramatiq's Redis layout and scripts: the one module outside Dramatiq that knows them.

Dramatiq 2's Redis broker keeps, under its namespace (``dramatiq``, which jobordre keeps):

* ``<ns>:<queue>``: the list of ready message ids; ``<ns>:<queue>.msgs``: id -> message;
* ``<ns>:<queue>.DQ``: the delay queue, where retries wait out their backoff;
* ``<ns>:<queue>.XQ`` (sorted by time) and ``<ns>:<queue>.XQ.msgs``: dead letters;
* ``<ns>:__heartbeats__``: broker ids by their last beat, in ms since the epoch;
* ``<ns>:__acks__.<broker id>.<queue>``: the ids a broker fetched and has not acked.

Every change to those keys goes through Dramatiq's ``dispatch.lua`` (:func:`dispatch`),
except one: :data:`ACK_MANY`, the ``ack`` branch of that script for many message ids in
one call (workers/transport/outbound.py sends a process's acks with it). None of this is
Dramatiq's public API; tests/workers/transport/test_dramatiq_contract.py pins every name
and behaviour used here and in the other transport modules (the consumer subclass in
workers/transport/broker.py), so a Dramatiq release that changes them fails there first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name

#: Dramatiq's Redis namespace (RedisBroker's default, which jobordre keeps).
NAMESPACE = "dramatiq"


def queue_key(namespace: str, queue: str) -> str:
    """The list of ready message ids of ``queue``."""
    return f"{namespace}:{queue}"


def messages_key(namespace: str, queue: str) -> str:
    """The hash of message id -> message of ``queue`` (ready, delayed or held)."""
    return f"{namespace}:{queue}.msgs"


def dead_key(namespace: str, queue: str) -> str:
    """Dramatiq's dead-letter set of ``queue``: message ids by when they died."""
    return f"{namespace}:{queue}.XQ"


def dead_messages_key(namespace: str, queue: str) -> str:
    """The hash of message id -> message of Dramatiq's dead letters of ``queue``."""
    return f"{namespace}:{queue}.XQ.msgs"


def delay_queue(queue: str) -> str:
    """The delay queue of ``queue``, where retries wait out their backoff."""
    return str(dq_name(queue))


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
        names += [queue, delay_queue(queue)]
    return names


def now_ms() -> int:
    """Dramatiq's clock: milliseconds since the epoch, as its scripts and messages use."""
    return int(current_millis())


def dispatch(
    broker: RedisBroker,
    command: str,
    queue_name: str,
    *args: Any,
    maintenance: bool,
    client: Any = None,
) -> Any:
    """Run Dramatiq's dispatch script as its broker does (same arguments), on ``client``
    (a pipeline, say) if given; ``maintenance`` forces or skips the pass that requeues
    dead workers' messages, which the stock broker leaves to chance."""
    return broker.scripts["dispatch"](
        keys=[broker.namespace],
        args=[
            command,
            now_ms(),
            queue_name,
            broker.broker_id,
            broker.heartbeat_timeout,
            broker.dead_message_ttl,
            int(maintenance),
            broker._max_unpack_size(),  # type: ignore[no-untyped-call]
            *args,
        ],
        client=client,
    )


#: Dramatiq's ack for many messages of one queue: the ``ack`` branch of its dispatch
#: script, with its heartbeat, per message id.
#: KEYS: heartbeats, the worker's ack set of the queue, the queue's message hash.
#: ARGV: timestamp, worker id, message ids...
ACK_MANY = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
for i = 3, #ARGV do
  if redis.call('SREM', KEYS[2], ARGV[i]) > 0 then
    redis.call('HDEL', KEYS[3], ARGV[i])
  end
end
return #ARGV - 2
"""


def ack_many(
    pipe: Any, namespace: str, worker_id: str, queue_name: str, redis_ids: list[str]
) -> None:
    """Queue on ``pipe`` the ack of ``redis_ids``, held by ``worker_id`` from ``queue_name``."""
    pipe.eval(
        ACK_MANY,
        3,
        heartbeats_key(namespace),
        acks_key(namespace, worker_id, queue_name),
        messages_key(namespace, queue_name),
        now_ms(),
        worker_id,
        *redis_ids,
    )
