"""Replies from workers to waiting clients, over Redis lists.

A worker pushes the reply onto ``<prefix>:reply:<command_id>`` with a time to live
(:class:`workers.transport.outbound.Outbound`, with other jobs' replies and acks); the
client waits on it with BLPOP, so a result arrives the moment it exists; a client with
many commands in flight takes every reply that is ready in one round trip
(:func:`wait_replies`). A reply that
expires unread is not lost: the command ledger keeps it, and resending the same command id
returns it again.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from workers.transport.outbound import reply_key

#: Longest single BLPOP of a wait, in seconds: well under any client's socket timeout
#: (redis-py 8 reads with a 5 s timeout by default), so a long wait is many short ones.
WAIT_CHUNK_S = 2.0


def wait_reply(
    client: redis.Redis,
    prefix: str,
    command_id: str,
    timeout_ms: int,
    accept: Callable[[dict[str, Any]], dict[str, Any] | None],
    principal: str | None = None,
) -> dict[str, Any] | None:
    """Block until a reply that ``accept`` takes arrives; ``None`` after ``timeout_ms``.

    ``accept`` returns the opened reply, or ``None`` for one that is not this command's (a
    forgery, a stale reply of an earlier send of the same id): that one is dropped and the
    wait goes on, so whoever can write to Redis cannot answer for the foundation.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    key = reply_key(prefix, command_id, principal)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        item = client.blpop([key], timeout=max(min(left, WAIT_CHUNK_S), 0.001))
        if item is None:
            continue
        wire = _wire(item[1])
        reply = accept(wire) if wire is not None else None
        if reply is not None:
            return reply


def _wire(raw: bytes | str) -> dict[str, Any] | None:
    """The JSON object a reply list held; ``None`` for anything else."""
    try:
        wire = json.loads(raw)
    except ValueError:
        return None
    return wire if isinstance(wire, dict) else None


#: Most reply keys one round trip of :func:`wait_replies` looks at: the oldest waiting
#: commands first, since replies come back about in the order their commands were sent.
WAIT_WINDOW = 256

#: Pops every reply that is ready among KEYS; answers ``{index, reply, ...}`` for those
#: only, so a round trip that finds few replies among many keys stays small.
_POP_READY = """
local found = {}
for i, key in ipairs(KEYS) do
  local reply = redis.call('LPOP', key)
  if reply then
    found[#found + 1] = i
    found[#found + 1] = reply
  end
end
return found
"""


def wait_replies(
    client: redis.Redis,
    prefix: str,
    command_ids: list[str],
    timeout_ms: int,
    accept: Callable[[dict[str, Any], str], dict[str, Any] | None],
    principal: str | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(command_id, reply)`` for each of ``command_ids`` as its reply arrives.

    The many-command form of :func:`wait_reply`, for a caller with many commands in
    flight: one round trip takes every reply that is ready (a worker answers a batch of
    commands at once), and only when none is does it block, on all the waiting keys at
    once. ``accept(wire, command_id)`` opens a reply as in :func:`wait_reply`; one it
    refuses is dropped and that command waited for still. Ends after ``timeout_ms`` from
    the call with the unanswered ones not yielded; the caller sees which are missing.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    waiting = {reply_key(prefix, command_id, principal): command_id for command_id in command_ids}
    pop_ready = client.register_script(_POP_READY)
    while waiting:
        keys = list(itertools.islice(waiting, WAIT_WINDOW))
        found = pop_ready(keys=keys)
        pairs = zip(found[::2], found[1::2], strict=True)
        popped = [(keys[int(index) - 1], raw) for index, raw in pairs]
        if not popped:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            item = client.blpop(keys, timeout=max(min(left, WAIT_CHUNK_S), 0.001))
            if item is None:
                continue
            key = item[0]
            popped = [(key.decode() if isinstance(key, bytes) else key, item[1])]
        for key, raw in popped:
            command_id = waiting[key]
            wire = _wire(raw)
            reply = accept(wire, command_id) if wire is not None else None
            if reply is not None:
                del waiting[key]
                yield command_id, reply
