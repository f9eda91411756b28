"""What the queues hold right now: the numbers behind ``jobordre queues``.

Read straight from Dramatiq's keys in Redis (one MULTI snapshot, no ``KEYS``):

- ready: message ids waiting in the list ``dramatiq:<queue>``, and for the queries queue
  on the organisations' lists a worker sorted them onto (:mod:`workers.transport.fair_queue`);
- delayed: messages in the delay queue (retries waiting for their backoff, delayed sends);
- in flight: fetched by a worker and not acked yet, running or prefetched, summed over the
  unacked sets of every worker in the heartbeat set (a dead worker's too, until recovery);
- dead: in Dramatiq's dead-letter set ``<queue>.XQ`` (kept 7 days) and in the store
  (dead letters not retried yet, of the kinds that travel on the queue);
- oldest age: seconds since the oldest ready message was first enqueued. Workers take
  from the head of the list, but Dramatiq puts requeued messages (recovery, a stopping
  worker's prefetch) back at its tail, so the oldest may be at either end: the first and
  the last :data:`OLDEST_SCAN` ids are looked at (every one, for a list up to twice that),
  and the oldest of each organisation's list.

Plus the throughput and durations per job kind (:mod:`workers.ops.stats`) and the workers
(:mod:`workers.ops.registry` joined with Dramatiq's heartbeats).
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from shared import store
from shared.commands import CommandKind
from shared.errors import Unavailable
from shared.settings import Settings
from workers.ops import registry
from workers.ops.deadletters import read_only
from workers.ops.stats import read_stats
from workers.transport.broker import COMMANDS_QUEUE, QUERIES_QUEUE, queue_for
from workers.transport.dramatiq_redis import (
    NAMESPACE,
    acks_key,
    dead_key,
    delay_queue,
    heartbeats_key,
    messages_key,
    queue_key,
)
from workers.transport.fair_queue import FairQueue

#: The queues jobordre declares.
QUEUES = (COMMANDS_QUEUE, QUERIES_QUEUE)
#: Message ids read from each end of a ready list to find its oldest message.
OLDEST_SCAN = 500


def _oldest_age_s(
    client: redis.Redis, queue: str, now_s: float, sorted_heads: list[bytes]
) -> float | None:
    key = queue_key(NAMESPACE, queue)
    pipe = client.pipeline(transaction=True)
    pipe.lrange(key, 0, OLDEST_SCAN - 1)
    pipe.lrange(key, -OLDEST_SCAN, -1)
    head, tail = pipe.execute()
    ids = list(dict.fromkeys([*head, *tail, *sorted_heads]))
    if not ids:
        return None
    stamps = [
        int(json.loads(raw)["message_timestamp"])
        for raw in client.hmget(messages_key(NAMESPACE, queue), ids)
        if raw is not None  # acked between the two reads
    ]
    if not stamps:
        return None
    return round(max(now_s - min(stamps) / 1000, 0.0), 3)


def broker_snapshot(client: redis.Redis, settings: Settings) -> dict[str, Any]:
    """Queues and workers as Redis holds them now; see the module docstring."""
    now_s = time.time()
    scored = cast(
        "list[tuple[bytes, float]]",
        client.zrange(heartbeats_key(NAMESPACE), 0, -1, withscores=True),
    )
    beats = {member.decode(): score / 1000 for member, score in scored}
    infos = {info["id"]: info for info in registry.registered(client, settings.redis_prefix)}
    worker_ids = sorted(set(beats) | set(infos))
    pipe = client.pipeline(transaction=True)
    for queue in QUEUES:
        pipe.llen(queue_key(NAMESPACE, queue))
        pipe.hlen(messages_key(NAMESPACE, delay_queue(queue)))
        pipe.zcard(dead_key(NAMESPACE, queue))
        for worker_id in worker_ids:
            pipe.scard(acks_key(NAMESPACE, worker_id, queue))
    replies = iter(pipe.execute())
    # Queries the workers sorted per organisation wait too (workers/transport/fair_queue.py).
    fair_waiting, fair_heads = FairQueue(client, NAMESPACE, QUERIES_QUEUE).waiting()
    queues: list[dict[str, Any]] = []
    held: dict[str, int] = dict.fromkeys(worker_ids, 0)
    for queue in QUEUES:
        ready, delayed, xq = (int(next(replies)) for _ in range(3))
        sorted_heads: list[bytes] = []
        if queue == QUERIES_QUEUE:
            ready += fair_waiting
            sorted_heads = fair_heads
        in_flight = 0
        for worker_id in worker_ids:
            n = int(next(replies))
            held[worker_id] += n
            in_flight += n
        queues.append(
            {
                "name": queue,
                "ready": ready,
                "delayed": delayed,
                "in_flight": in_flight,
                "dead_broker": xq,
                "oldest_age_s": _oldest_age_s(client, queue, now_s, sorted_heads),
            }
        )
    timeout_s = settings.heartbeat_timeout_ms / 1000
    workers = []
    for worker_id in worker_ids:
        info = infos.get(worker_id)
        if info is None:
            continue  # a client's broker (clients beat too) or a non-jobordre worker
        last = max(beats.get(worker_id, 0.0), float(info.get("beat_at", 0.0)))
        workers.append(
            {
                "id": worker_id,
                "host": info["host"],
                "pid": info["pid"],
                "threads": info["threads"],
                "alive": now_s - last < timeout_s,
                "last_heartbeat": round(last, 3),
                "heartbeat_age_s": round(max(now_s - last, 0.0), 3),
                "in_flight": held[worker_id],
                "running": info.get("running", 0),
            }
        )
    return {"at": round(now_s, 3), "queues": queues, "workers": workers}


def store_dead_counts(settings: Settings) -> dict[str, int | None]:
    """Dead letters not retried yet, per queue (their kind's queue); None without a store."""
    try:
        with read_only(settings) as conn:
            per_kind = store.count_dead_letters(conn)
    except Unavailable:  # an ops host that sees only Redis: nothing created, nothing shown
        return dict.fromkeys(QUEUES, None)
    counts = dict.fromkeys(QUEUES, 0)
    for kind, n in per_kind.items():
        try:
            counts[queue_for(CommandKind(kind))] += n
        except ValueError:
            counts[COMMANDS_QUEUE] += n  # an unknown kind: shown with the commands
    return dict(counts)


def snapshot(client: redis.Redis, settings: Settings) -> dict[str, Any]:
    """Everything ``jobordre queues`` shows, as one JSON-ready document."""
    document = broker_snapshot(client, settings)
    dead = store_dead_counts(settings)
    for queue in document["queues"]:
        queue["dead_store"] = dead[queue["name"]]
    stats = read_stats(client, settings.redis_prefix, document["at"])
    document["jobs"] = stats["jobs"]
    document["throughput"] = {"bucket_s": stats["bucket_s"], "done": stats["throughput"]}
    document["windows_s"] = stats["window_s"]
    return document
