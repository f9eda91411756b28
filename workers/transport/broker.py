"""The Redis broker, configured once for workers and clients alike.

Production and the embedded default share this code path: only the URL differs. With no
``JOBORDRE_REDIS_URL`` the URL is read from the address file ``jobordre up`` writes.
A client builds its broker with :func:`build_broker`; a worker with
:func:`build_worker_broker`, which also returns the :class:`Outbound` its consumers ack
through, for the worker to send its replies with.

Dramatiq's private consumer (``_RedisConsumer``) and worker hook (``Worker._add_consumer``)
are subclassed here and nowhere else; Dramatiq's Redis keys and scripts are in
workers/transport/dramatiq_redis.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, cast

import dramatiq
import redis
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import DecodeError
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from shared.commands import CommandKind
from shared.errors import Unavailable
from shared.redis_url import redact_redis_url
from shared.settings import Settings
from workers.transport.dramatiq_redis import (
    NAMESPACE,
    acks_key,
    dispatch,
    messages_key,
    now_ms,
    queue_key,
)
from workers.transport.fair_queue import FairQueue
from workers.transport.outbound import FlushOnShutdown, Outbound
from workers.transport.redis_connection import connect_redis

logger = logging.getLogger("jobordre.broker")

#: Queue of the commands that change the store.
COMMANDS_QUEUE = "jobordre.commands"
#: Queue of read-only queries; kept apart so a backlog of writes never delays a search.
QUERIES_QUEUE = "jobordre.queries"
#: Longest a single job may run before Dramatiq interrupts it, in milliseconds.
JOB_TIME_LIMIT_MS = 60_000


def queue_for(kind: CommandKind) -> str:
    """The queue a command kind travels on."""
    return COMMANDS_QUEUE if kind.writes else QUERIES_QUEUE


def enqueue_messages(pipe: Any, messages: list[Message[Any]]) -> None:
    """Add the atomic enqueue of docs/protocol.md § 2 to the (non-transactional) pipeline
    ``pipe``: ``MULTI``, each message into its queue's hash (its Redis id is its message
    id) and its id onto the queue's list, ``EXEC``. Not a script: a script's keys need read
    access too, and an organisation's Redis user may only write the queues (``jobordre
    broker acl``)."""
    pipe.execute_command("MULTI")
    for message in messages:
        message_id = message.message_id
        data = message.copy(options={**message.options, "redis_message_id": message_id})
        queue = queue_key(NAMESPACE, message.queue_name)
        pipe.hset(f"{queue}.msgs", message_id, data.encode())
        pipe.rpush(queue, message_id)
    pipe.execute_command("EXEC")


def redact(url: str) -> str:
    """A Redis URL fit for messages and logs: the passwords replaced."""
    return redact_redis_url(url)


def resolve_redis_url(settings: Settings) -> str:
    """``JOBORDRE_REDIS_URL``, else the embedded broker's address; :class:`Unavailable` if none."""
    if settings.redis_url:
        return settings.redis_url
    try:
        address = json.loads(settings.embedded_address_file.read_text())
        return str(address["redis_url"])
    except (OSError, ValueError, KeyError):
        raise Unavailable(
            f"no jobordre is running for JOBORDRE_HOME={settings.home}: start one with "
            "`jobordre up`, or set JOBORDRE_REDIS_URL to a Redis with workers"
        ) from None


#: The message options a worker heeds, all of them set by Dramatiq itself (the broker's id
#: of the message, a delay, and the retry bookkeeping), and ``max_age`` (a client may let its
#: own message expire sooner). Options are not signed: anything else a client sets
#: (``time_limit``, ``max_retries``, backoffs, ``throws``, callbacks, pipelines) is dropped
#: before any middleware reads it, so no client's message sets another's time limit (a
#: batch of write commands shares one) or its own retry policy.
KEPT_OPTIONS = frozenset({"redis_message_id", "eta", "retries", "traceback", "requeue_timestamp"})


class ClientOptions(Middleware):
    """Drops the options of a message jobordre did not set itself; bounds the ones it keeps.

    First in the broker's middleware, so its ``before_process_message`` runs before the
    hooks that read options (age and time limits, retries, callbacks)."""

    def __init__(self, max_retries: int) -> None:
        self.max_retries = max_retries

    def before_process_message(self, broker: Any, message: Any) -> None:
        options: dict[str, Any] = message.options
        kept = {name: value for name, value in options.items() if name in KEPT_OPTIONS}
        retries = kept.get("retries")
        if retries is not None:
            kept["retries"] = min(max(retries, 0), self.max_retries) if type(retries) is int else 0
        max_age = options.get("max_age")
        if type(max_age) is int and max_age > 0:
            kept["max_age"] = max_age
        if not isinstance(kept.get("traceback", ""), str):
            del kept["traceback"]
        options.clear()
        options.update(kept)


#: Called with (queue name, raw bytes) for a message on a queue that is not a Dramatiq
#: message at all; the worker keeps it as a dead letter.
UndecodableHandler = Callable[[str, bytes], None]
#: Called with a message addressed to an actor no one declared.
UnknownActorHandler = Callable[[Any], None]


class _GuardedConsumer(_RedisConsumer):
    """A consumer that sets aside bytes on the queue that are not a message.

    The stock consumer raises on them, restarts a second later and leaves them in its
    unacked set, where they come back after every worker restart. Here they go to the
    broker's :data:`UndecodableHandler` and are acked: kept once, never looping.

    With an ``outbound`` (a worker's), an ack is queued there, to go out with the job's
    reply; without one (a client's), it is Dramatiq's own.
    """

    broker: JobordreBroker

    def __init__(
        self,
        broker: JobordreBroker,
        queue_name: str,
        prefetch: int,
        timeout: int,
        *,
        outbound: Outbound | None,
    ) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        self.outbound = outbound

    def __next__(self) -> Any:
        while True:
            try:
                message = super().__next__()  # type: ignore[no-untyped-call]
            except DecodeError as error:
                self._set_aside(error.data)
                continue
            if message is not None and "redis_message_id" not in message.options:
                self._adopt(message)
            return message

    def take_cached(self, most: int) -> list[Any]:
        """Up to ``most`` of the messages fetched already and not handed out yet, without
        another round trip: a batch consumer takes them at once (workers/worker/command_batches.py).
        Undecodable bytes among them are set aside as :meth:`__next__` does."""
        taken: list[Any] = []
        while self.message_cache and len(taken) < most:
            data = self.message_cache.pop(0)
            if data is None:
                continue
            try:
                message = MessageProxy(Message.decode(data))
            except DecodeError as error:
                self._set_aside(error.data)
                continue
            self.queued_message_ids.add(message.message_id)
            if "redis_message_id" not in message.options:
                self._adopt(message)
            taken.append(message)
        return taken

    def held(self, messages: list[Any]) -> list[Any]:
        """Those of ``messages`` this consumer took and has neither acked nor nacked."""
        return [m for m in messages if m.message_id in self.queued_message_ids]

    def ack(self, message: Any) -> None:
        if self.outbound is None:
            super().ack(message)  # type: ignore[no-untyped-call]
            return
        self.queued_message_ids.discard(message.message_id)
        self.outbound.ack(self.queue_name, message.options["redis_message_id"])

    def nack(self, message: Any) -> None:
        # Dramatiq moves a message for an actor it does not know to its own dead-letter
        # queue; keep it where people look for dead letters too.
        handler = self.broker.unknown_actor_handler
        if handler is not None and message.actor_name not in self.broker.actors:
            handler(message)
        super().nack(message)  # type: ignore[no-untyped-call]

    def _unacked(self) -> list[tuple[str, bytes | None]]:
        """(Redis id, body) of the messages this consumer holds unacked."""
        broker = self.broker
        acks = acks_key(broker.namespace, broker.broker_id, self.queue_name)
        ids = [m.decode() for m in cast("set[bytes]", broker.client.smembers(acks))]
        bodies = (
            broker.client.hmget(messages_key(broker.namespace, self.queue_name), ids) if ids else []
        )
        return list(zip(ids, bodies, strict=True))

    def _set_aside(self, data: bytes) -> None:
        handler = self.broker.undecodable_handler
        if handler is not None:
            handler(self.queue_name, data)
        for redis_id, body in self._unacked():
            if body == data:
                self.broker.do_ack(self.queue_name, redis_id)

    def _adopt(self, message: Any) -> None:
        # A message written by hand, not through Dramatiq's enqueue, lacks the Redis id
        # that acking needs; find it, or the message would stay unacked for ever.
        for redis_id, body in self._unacked():
            try:
                found = json.loads(body or b"{}").get("message_id") == message.message_id
            except ValueError:
                found = False
            if found:
                message.options["redis_message_id"] = redis_id
                return


#: Longest nap of a waiting consumer between an empty fetch and its next wait, in ms.
QUEUE_NAP_MS = 10


class ReplicationUnconfirmed(Unavailable):
    """An enqueued message that not enough replicas acknowledged in time: on the master
    now, but a failover before it replicates would lose it."""


class JobordreBroker(RedisBroker):
    """Dramatiq's RedisBroker, with consumers that set undecodable bytes aside.

    With ``queue_wait_ms`` (every worker's broker), a consumer of an empty queue waits on
    the queue's own list instead of polling it: ``BLMOVE q q LEFT LEFT`` blocks until a
    message id arrives and puts it straight back where it was, so nothing is taken and the
    order stays; then the consumer fetches as usual. Any enqueuer wakes it (a client in
    any language, a requeue, a retry), an idle system makes one broker call per queue per
    wait instead of one per poll, and a command is taken at once.
    """

    undecodable_handler: UndecodableHandler | None = None
    unknown_actor_handler: UnknownActorHandler | None = None
    #: A worker's replies and acks, sent in batches (:func:`build_worker_broker`); None
    #: (clients) = acks as Dramatiq's.
    outbound: Outbound | None = None
    #: How long a consumer of an empty queue waits on it before it looks again, in ms;
    #: None = poll as stock Dramatiq does.
    queue_wait_ms: int | None = None
    #: The fair fetch of the queries queue, made on first use.
    _fair: FairQueue | None = None

    def _dispatch(self, command: str) -> Callable[..., Any]:
        # Dramatiq's own dispatch (same script arguments), for the fetch it makes.
        def do_dispatch(queue_name: str, *args: Any) -> Any:
            maintenance = bool(self._should_do_maintenance(command))
            return dispatch(self, command, queue_name, *args, maintenance=maintenance)

        return do_dispatch

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Any:
        # The wait is on the queue itself: between two waits a consumer only naps.
        if self.queue_wait_ms is not None:
            timeout = min(timeout, QUEUE_NAP_MS)
        return _GuardedConsumer(self, queue_name, prefetch, timeout, outbound=self.outbound)

    def _fetcher(self, queue_name: str) -> Callable[[str, int], list[bytes]]:
        """Dramatiq's fetch, or for the queries queue the fair one (fair_queue.py)."""
        if queue_name != QUERIES_QUEUE:
            return self._dispatch("fetch")
        fair = self._fair
        if fair is None:
            fair = self._fair = FairQueue(self.client, self.namespace, QUERIES_QUEUE)
        most = self._max_unpack_size()  # type: ignore[no-untyped-call]

        def fetch(_queue_name: str, prefetch: int) -> list[bytes]:
            return fair.fetch(self.broker_id, min(prefetch, most), now_ms())

        return fetch

    def do_fetch(self, queue_name: str, prefetch: int) -> list[bytes]:
        """Dramatiq's fetch (the queries queue's: fair, see :mod:`workers.transport.fair_queue`); on
        an empty queue, wait for a message id on it, then fetch again (see
        :attr:`queue_wait_ms`)."""
        fetch = self._fetcher(queue_name)
        messages: list[bytes] = fetch(queue_name, prefetch)
        wait_ms = self.queue_wait_ms
        if messages or wait_ms is None:
            return messages
        queue = queue_key(self.namespace, queue_name)
        try:
            # Redis takes a fractional timeout (seconds); redis-py's hint says int.
            wait_s: Any = wait_ms / 1000
            arrived = self.client.blmove(queue, queue, wait_s, "LEFT", "LEFT")
        except redis.ResponseError as error:
            if "unknown command" not in str(error).lower():
                raise
            # BLMOVE came with Redis 6.2; an older server is polled as stock Dramatiq does.
            logger.warning("Redis before 6.2 has no BLMOVE: idle consumers poll instead")
            self.queue_wait_ms = None
            return []
        if arrived is None:
            return []  # nothing arrived: the consumer naps and comes back
        again: list[bytes] = fetch(queue_name, prefetch)
        return again


def build_broker(settings: Settings, url: str, *, wait_ms: int | None = None) -> JobordreBroker:
    """A RedisBroker with jobordre's retry policy; no connection is made until first use.

    With ``wait_ms``, consumers of an empty queue wait on it for that long at a time
    instead of polling (see :class:`JobordreBroker`). Its acks are Dramatiq's own; a
    worker's go with its replies (:func:`build_worker_broker`).
    """
    broker = JobordreBroker(  # type: ignore[no-untyped-call]
        # One connection factory for every URL form, Sentinel included: a failover moves
        # the broker's connections to the promoted master (workers/transport/redis_connection.py).
        client=connect_redis(
            url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
        ),
        middleware=[
            ClientOptions(max_retries=settings.max_retries),
            AgeLimit(),
            TimeLimit(time_limit=JOB_TIME_LIMIT_MS),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            Retries(
                max_retries=settings.max_retries,
                min_backoff=settings.min_backoff_ms,
                max_backoff=settings.max_backoff_ms,
            ),
        ],
        # Workers beat and run maintenance on a timer (workers/ops/recovery.py), so a
        # silent worker can be declared dead well before Dramatiq's default of 60 s.
        heartbeat_timeout=settings.heartbeat_timeout_ms,
    )
    broker.queue_wait_ms = wait_ms
    return broker


def build_worker_broker(
    settings: Settings, url: str, *, wait_ms: int
) -> tuple[JobordreBroker, Outbound]:
    """A worker's broker and its :class:`Outbound`: the broker's consumers queue their acks
    there, and the worker its replies, so a job's reply and its ack go out together, reply
    first (:mod:`workers.transport.outbound`); the rest is flushed when the worker stops."""
    broker = build_broker(settings, url, wait_ms=wait_ms)
    outbound = Outbound(broker.client, namespace=broker.namespace, broker_id=broker.broker_id)
    broker.outbound = outbound
    broker.add_middleware(FlushOnShutdown(outbound))
    return broker, outbound


class QueriesWorker(dramatiq.Worker):
    """Dramatiq's worker without a consumer of ``jobordre.commands``: its threads serve
    the queries, and the commands' delay queue still sends due retries back (the batch
    consumer takes the commands, workers/worker/command_batches.py). The hook is
    Dramatiq 2's own, private: pyproject.toml keeps Dramatiq below 3, and
    tests/workers/transport/test_dramatiq_contract.py pins its signature."""

    def _add_consumer(self, queue_name: str, *, delay: bool = False) -> None:
        if queue_name == COMMANDS_QUEUE:
            return
        super()._add_consumer(queue_name, delay=delay)
