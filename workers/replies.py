"""Replies from workers to waiting clients, over Redis lists.

A worker pushes the reply onto ``<prefix>:reply:<command_id>`` with a time to live; the
client waits on it with BLPOP, so a result arrives the moment it exists. A reply that
expires unread is not lost: the command ledger keeps it, and resending the same command id
returns it again.
"""

from __future__ import annotations

import json
from typing import Any

import redis


def reply_key(prefix: str, command_id: str) -> str:
    """The Redis list a command's reply is pushed onto."""
    return f"{prefix}:reply:{command_id}"


def push_reply(client: redis.Redis, prefix: str, ttl_ms: int, reply: dict[str, Any]) -> None:
    """Hand a reply to whoever waits for it (or keep it ``ttl_ms`` for a late client)."""
    key = reply_key(prefix, str(reply["command_id"]))
    # MULTI costs no extra round trip, and a reply never stays without its time to live.
    pipe = client.pipeline(transaction=True)
    pipe.rpush(key, json.dumps(reply))
    pipe.pexpire(key, ttl_ms)
    pipe.execute()


def wait_reply(
    client: redis.Redis, prefix: str, command_id: str, timeout_ms: int
) -> dict[str, Any] | None:
    """Block until the reply arrives; ``None`` after ``timeout_ms``."""
    item = client.blpop([reply_key(prefix, command_id)], timeout=max(timeout_ms / 1000, 0.001))
    if item is None:
        return None
    reply: dict[str, Any] = json.loads(item[1])
    return reply
