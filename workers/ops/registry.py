"""Which workers exist: each worker registers its host, pid and threads in Redis.

Dramatiq's heartbeat set knows only random broker ids; ops people need to know which
machine and process to look at. Each worker keeps one field of the hash
``<prefix>:ops:workers`` (its broker id → a JSON document) fresh on every beat and removes
it when it stops. A field whose beat is older than :data:`FORGET_AFTER_S` belongs to a
worker that died long ago and is dropped by the next live worker's beat.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import redis

#: How long a dead worker stays listed (as dead) before it is forgotten, in seconds.
FORGET_AFTER_S = 600


def workers_key(prefix: str) -> str:
    """The hash of registered workers."""
    return f"{prefix}:ops:workers"


def worker_info(worker_id: str, threads: int, started_at: float) -> dict[str, Any]:
    """This process's entry, without its beat."""
    return {
        "id": worker_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "threads": threads,
        "started_at": started_at,
    }


def beat(
    client: redis.Redis, prefix: str, info: dict[str, Any], running: int, now: float | None = None
) -> None:
    """Refresh this worker's entry and forget workers dead for :data:`FORGET_AFTER_S`."""
    now = time.time() if now is None else now
    key = workers_key(prefix)
    client.hset(key, info["id"], json.dumps({**info, "beat_at": now, "running": running}))
    for worker_id, raw in client.hgetall(key).items():
        if now - float(json.loads(raw).get("beat_at", 0)) > FORGET_AFTER_S:
            client.hdel(key, worker_id)


def starts_key(prefix: str) -> str:
    """The hash of worker starts per host."""
    return f"{prefix}:ops:starts"


def record_start(client: redis.Redis, prefix: str, info: dict[str, Any]) -> None:
    """Count one more start of a worker process on this entry's host.

    Kept in Redis, not in the process: a process that crashes before its first scrape
    still counts, which is what an alert on restarting workers needs.
    """
    client.hincrby(starts_key(prefix), info["host"], 1)


def starts(client: redis.Redis, prefix: str) -> dict[str, int]:
    """Worker starts per host since Redis was last emptied."""
    counts = client.hgetall(starts_key(prefix))
    return {(h.decode() if isinstance(h, bytes) else h): int(n) for h, n in counts.items()}


def unregister(client: redis.Redis, prefix: str, worker_id: str) -> None:
    """Remove this worker's entry (on a clean stop)."""
    client.hdel(workers_key(prefix), worker_id)


def registered(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    """Every registered worker's last entry."""
    return [json.loads(raw) for raw in client.hgetall(workers_key(prefix)).values()]
