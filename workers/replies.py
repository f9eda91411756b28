"""Replies from workers to waiting clients, over Redis lists.

A worker pushes the reply onto ``<prefix>:reply:<command_id>`` with a time to live
(:class:`workers.outbound.Outbound`, with other jobs' replies and acks); the
client waits on it with BLPOP, so a result arrives the moment it exists. A reply that
expires unread is not lost: the command ledger keeps it, and resending the same command id
returns it again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis


def reply_key(prefix: str, command_id: str) -> str:
    """The Redis list a command's reply is pushed onto."""
    return f"{prefix}:reply:{command_id}"


#: Longest single BLPOP of a wait, in seconds: well under any client's socket timeout
#: (redis-py 8 reads with a 5 s timeout by default), so a long wait is many short ones.
WAIT_CHUNK_S = 2.0


def wait_reply(
    client: redis.Redis,
    prefix: str,
    command_id: str,
    timeout_ms: int,
    accept: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> dict[str, Any] | None:
    """Block until a reply that ``accept`` takes arrives; ``None`` after ``timeout_ms``.

    ``accept`` returns the opened reply, or ``None`` for one that is not this command's (a
    forgery, a stale reply of an earlier send of the same id): that one is dropped and the
    wait goes on, so whoever can write to Redis cannot answer for the foundation.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    key = reply_key(prefix, command_id)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        item = client.blpop([key], timeout=max(min(left, WAIT_CHUNK_S), 0.001))
        if item is None:
            continue
        try:
            wire = json.loads(item[1])
        except ValueError:
            continue
        if isinstance(wire, dict):
            reply = accept(wire)
            if reply is not None:
                return reply
