"""The Redis writes that follow a job (its reply, its ack), sent for many jobs at once.

A worker thread that sent a job's reply and ack itself would make two round trips of its
own. Under load a process's threads finish jobs a few hundred
microseconds apart, and each round trip cost a thread switch, a connection checkout and a
system call pair. Here a thread only queues the two writes and takes its next message; one
flusher thread per process sends whatever is queued as ONE ``MULTI``/``EXEC`` (the
replies with their time to live in one script call, then the acks, each queue's in one
script call). A thread that answers a batch of commands holds its writes back until the
batch is done (:meth:`Outbound.held`), so the batch goes out in one flush.

The delivery contract is unchanged:

* **A job's reply goes before its ack**, in the same transaction or an earlier one (one
  queue, one flusher, order kept), so an acked command has had its reply pushed.
* **Nothing queued is dropped.** A flush that fails (Redis away, a failover) is retried
  with backoff, in order, until it succeeds. A process that dies with writes still queued
  leaves its messages unacked: Dramatiq gives them to another worker, the ledger answers
  them again (``shared/foundation.py``), and the client gets its reply.
* Replies and acks are idempotent: a flush retried after it half-succeeded pushes a reply
  the client ignores (it takes the first) and acks what is acked already.
* A flush is retried only when nothing of it ran (the connection failed, Redis refused the
  transaction). A command Redis refuses inside it is logged and not retried, so no one
  who can write to Redis can wedge a worker's replies by spoiling one reply key.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import redis

from workers.transport.dramatiq_redis import NAMESPACE, ack_many

logger = logging.getLogger("jobordre.outbound")

#: Pause after the first failed flush, in milliseconds; doubled per failure up to the max.
RETRY_MIN_MS = 50
#: Longest pause between two tries of a failing flush, in milliseconds.
RETRY_MAX_MS = 2_000
#: How long a stopping process keeps trying to flush, in milliseconds, before it leaves
#: the rest unacked (to be redelivered and answered from the ledger).
CLOSE_TIMEOUT_MS = 10_000

#: Pushes many replies with their time to live. KEYS: reply lists; ARGV: time to live in
#: milliseconds, then a body per key. A push Redis refuses (a reply key someone made a
#: string) does not stop the others: answers ``{true}``, or ``{false, error, ...}`` with
#: each refusal.
_PUSH_REPLIES = """
local refused = {false}
for i, key in ipairs(KEYS) do
  local pushed = redis.pcall('RPUSH', key, ARGV[i + 1])
  if type(pushed) == 'table' and pushed.err then
    refused[#refused + 1] = pushed.err
  else
    redis.call('PEXPIRE', key, ARGV[1])
  end
end
if #refused == 1 then return {true} end
return refused
"""


#: The ``v`` of a protocol 2 reply.
REPLY_V2 = 2


def reply_key(prefix: str, command_id: str, principal: str | None = None) -> str:
    """The Redis list a command's reply is pushed onto: protocol 1's
    ``<prefix>:reply:<command_id>``, or with ``principal`` protocol 2's
    ``<prefix>:replies:<principal>:<command_id>``, under one fixed prefix per principal
    (a Redis ACL gives each organisation its own)."""
    if principal is not None:
        return f"{prefix}:replies:{principal}:{command_id}"
    return f"{prefix}:reply:{command_id}"


#: A queued write: ("reply", key, body, ttl_ms) or ("ack", queue name, Redis message id).
_Item = tuple[Any, ...]


class Outbound:
    """Queues a worker process's replies and acks; a flusher thread sends them in batches.

    ``namespace`` and ``broker_id`` name the keys Dramatiq's Redis broker acks with (its
    ``namespace`` and ``broker_id``).
    """

    def __init__(
        self, client: redis.Redis, *, namespace: str = NAMESPACE, broker_id: str = ""
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.broker_id = broker_id
        self._items: list[_Item] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        #: Whether the current thread holds its writes back (:meth:`held`).
        self._holding = threading.local()
        #: Flushes sent and writes in them, since start (for measurements).
        self.flushes = 0
        self.writes = 0

    def push_reply(self, prefix: str, ttl_ms: int, reply: dict[str, Any]) -> None:
        """Queue a reply for the client waiting on its command id (workers/client/replies.py)."""
        # A protocol 2 reply goes to its principal's own list (docs/protocol.md § 14.7).
        principal = reply.get("principal") if reply.get("v") == REPLY_V2 else None
        key = reply_key(prefix, str(reply["command_id"]), principal)
        self._add(("reply", key, json.dumps(reply), ttl_ms))

    def ack(self, queue_name: str, redis_message_id: str) -> None:
        """Queue the ack of a message this process's consumer of ``queue_name`` took."""
        self._add(("ack", queue_name, redis_message_id))

    @contextmanager
    def held(self) -> Iterator[None]:
        """Queue this thread's writes without waking the flusher until the block ends.

        For a thread that answers many jobs at once (a batch of write commands): their
        replies and acks go out in one flush, not in as many as the flusher happens to
        wake for meanwhile. Other threads' writes are not held.
        """
        self._holding.active = True
        try:
            yield
        finally:
            self._holding.active = False
            with self._lock:
                queued = bool(self._items)
            if queued:
                self._wake.set()

    def _add(self, item: _Item) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobordre-outbound", daemon=True
                )
                self._thread.start()
            self._items.append(item)
            first = len(self._items) == 1
        # Only a write that finds the queue empty wakes the flusher: one that finds it
        # full will be taken by the flush that is already due.
        if first and not getattr(self._holding, "active", False):
            self._wake.set()

    def flush(self) -> None:
        """Send everything queued now, from the calling thread (retrying as the flusher
        does, until :data:`CLOSE_TIMEOUT_MS` when closing)."""
        while True:
            # Cleared before the take: a write queued after it wakes the flusher again.
            self._wake.clear()
            with self._lock:
                items, self._items = self._items, []
            if not items:
                return
            self._send(items)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing

    def close(self) -> None:
        """Flush what is queued and stop the flusher thread."""
        self._closing = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(CLOSE_TIMEOUT_MS / 1000 + 1)
        self.flush()

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait()
            self.flush()

    def _send(self, items: list[_Item]) -> None:
        """One transaction for ``items``, tried until it succeeds (or the close timeout)."""
        pause_ms = RETRY_MIN_MS
        deadline: float | None = None
        while True:
            try:
                results = self._transaction(items)
            except redis.RedisError as error:
                if self._closing:
                    deadline = deadline or time.monotonic() + CLOSE_TIMEOUT_MS / 1000
                    if time.monotonic() > deadline:
                        logger.error(
                            "stopping with %d replies and acks unsent (%s): their messages "
                            "stay unacked, are redelivered, and their replies come from the "
                            "ledger",
                            len(items),
                            error,
                        )
                        return
                logger.warning(
                    "sending %d replies and acks failed (%s); retrying in %d ms",
                    len(items),
                    error,
                    pause_ms,
                )
                time.sleep(pause_ms / 1000)
                pause_ms = min(pause_ms * 2, RETRY_MAX_MS)
                continue
            except Exception:
                # Not Redis refusing but a fault of ours: trying again would fail the same
                # way. As Dramatiq does when an ack fails so, the messages stay unacked.
                logger.exception(
                    "sending %d replies and acks failed; their messages stay unacked until "
                    "this worker restarts, then are redelivered and answered from the ledger",
                    len(items),
                )
                return
            self.flushes += 1
            self.writes += len(items)
            refused = [result for result in results if isinstance(result, Exception)]
            if refused:
                # The transaction ran; Redis refused single commands of it (a reply key
                # someone made a string, say). Sending it again would push the rest twice
                # and never get past them.
                logger.warning(
                    "Redis refused %d of the %d commands of a flush (first: %s): a refused "
                    "reply reaches its client when it sends the command again (the ledger "
                    "answers), a refused ack leaves its message unacked until this worker stops",
                    len(refused),
                    len(results),
                    refused[0],
                )
            return

    def _transaction(self, items: list[_Item]) -> list[Any]:
        pipe = self.client.pipeline(transaction=True)
        replies: dict[int, list[tuple[str, str]]] = defaultdict(list)
        acks: dict[str, list[str]] = defaultdict(list)
        for item in items:
            if item[0] == "reply":
                _, key, body, ttl_ms = item
                replies[ttl_ms].append((key, body))
            else:
                acks[item[1]].append(item[2])
        # Replies first: a job's ack never lands without its reply.
        for ttl_ms, pushed in replies.items():
            keys = [key for key, _ in pushed]
            pipe.eval(_PUSH_REPLIES, len(keys), *keys, ttl_ms, *(body for _, body in pushed))
        for queue_name, ids in acks.items():
            # EVAL with the text: a registered script in a pipeline costs a SCRIPT EXISTS
            # round trip first, and Redis caches the compiled script by its digest anyway.
            ack_many(pipe, self.namespace, self.broker_id, queue_name, ids)
        # A command Redis refuses inside EXEC comes back in its place, not raised: the
        # others ran. What raises (a lost connection, a refused MULTI) ran nothing.
        results: list[Any] = pipe.execute(raise_on_error=False)
        return [_refused(result) or result for result in results]


def _refused(result: Any) -> redis.ResponseError | None:
    """The first refusal :data:`_PUSH_REPLIES` reports (``{false, error}``), if any."""
    if isinstance(result, list) and result and not result[0]:
        return redis.ResponseError(f"refused {len(result) - 1} reply pushes, first: {result[1]}")
    return None


class FlushOnShutdown(dramatiq.Middleware):
    """Sends a worker's queued replies and acks when it has shut down."""

    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.outbound.close()
