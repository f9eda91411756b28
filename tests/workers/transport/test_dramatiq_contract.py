"""What jobordre relies on of Dramatiq beyond its public API, pinned: a Dramatiq release
that changes any of it fails here first, not in production.

workers/transport/ is the one owner of these names (workers/transport/broker.py subclasses
the consumer and the worker, workers/transport/dramatiq_redis.py names the Redis keys and
runs the scripts, and copies the ``ack`` of ``dispatch.lua`` for many ids). The behaviour
tests run against a real redis-server.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import dramatiq.brokers.redis as dramatiq_redis_broker
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import dq_name
from dramatiq.errors import DecodeError

from shared.settings import Settings
from tests.conftest import RedisServer, wait_until
from workers.transport import dramatiq_redis as layout
from workers.transport.broker import (
    COMMANDS_QUEUE,
    QUERIES_QUEUE,
    JobordreBroker,
    QueriesWorker,
    build_broker,
    build_worker_broker,
)

pytestmark = pytest.mark.timeout(60)

QUEUE = "jobordre.contract"

#: The ``ack`` branch of Dramatiq's dispatch.lua that :data:`layout.ACK_MANY` repeats per id.
DRAMATIQ_ACK = """\
elseif command == "ack" then
    local message_id = ARGS[1]

    if redis.call("srem", queue_acks, message_id) > 0 then
        redis.call("hdel", queue_messages, message_id)
    end
"""

#: The lines of dispatch.lua that name the keys :mod:`workers.transport.dramatiq_redis`
#: names, and the heartbeat every call (and ACK_MANY) gives.
DRAMATIQ_KEYS = (
    'local acks = namespace .. ":__acks__." .. worker_id',
    'local heartbeats = namespace .. ":__heartbeats__"',
    'redis.call("zadd", heartbeats, timestamp, worker_id)',
    'local queue_acks = acks .. "." .. queue_name',
    'local queue_full_name = namespace .. ":" .. queue_name',
    'local queue_messages = queue_full_name .. ".msgs"',
    'local xqueue_full_name = namespace .. ":" .. queue_canonical_name .. ".XQ"',
    'local xqueue_messages = xqueue_full_name .. ".msgs"',
)


def dispatch_lua() -> str:
    return (Path(dramatiq_redis_broker.__file__).parent / "redis" / "dispatch.lua").read_text()


def parameters(function: Callable[..., Any]) -> list[str]:
    return [
        f"{p.name}={p.default!r}" if p.default is not p.empty else p.name
        for p in inspect.signature(function).parameters.values()
    ]


# --- the names and signatures we call or override -------------------------------------------


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        pytest.param(
            _RedisConsumer.__init__,
            ["self", "broker", "queue_name", "prefetch", "timeout"],
            id="consumer-init",
        ),
        pytest.param(_RedisConsumer.__next__, ["self"], id="consumer-next"),
        pytest.param(_RedisConsumer.ack, ["self", "message"], id="consumer-ack"),
        pytest.param(_RedisConsumer.nack, ["self", "message"], id="consumer-nack"),
        pytest.param(_RedisConsumer.requeue, ["self", "messages"], id="consumer-requeue"),
        pytest.param(
            dramatiq.Worker._add_consumer,
            ["self", "queue_name", "delay=False"],
            id="worker-add-consumer",
        ),
        pytest.param(RedisBroker._dispatch, ["self", "command"], id="broker-dispatch"),
        pytest.param(
            RedisBroker._should_do_maintenance, ["self", "command"], id="broker-maintenance"
        ),
        pytest.param(RedisBroker._max_unpack_size, ["self"], id="broker-max-unpack"),
        pytest.param(
            RedisBroker.consume,
            ["self", "queue_name", "prefetch=1", "timeout=5000"],
            id="broker-consume",
        ),
        pytest.param(DecodeError.__init__, ["self", "message", "data", "error"], id="decode-error"),
    ],
)
def test_the_private_hooks_keep_their_signatures(
    function: Callable[..., Any], expected: list[str]
) -> None:
    assert parameters(function) == expected


@pytest.mark.parametrize(
    ("function", "call"),
    [
        # JobordreBroker overrides _dispatch (to choose the connection) and do_enqueue /
        # do_fetch; Dramatiq must still reach them through these calls.
        pytest.param(RedisBroker.__getattr__, "self._dispatch(command)", id="do-via-dispatch"),
        pytest.param(RedisBroker.enqueue, "self.do_enqueue(", id="enqueue-via-do-enqueue"),
        pytest.param(_RedisConsumer.__next__, "self.broker.do_fetch(", id="next-via-do-fetch"),
        pytest.param(RedisBroker.consume, "return self.consumer_class(", id="consume"),
    ],
)
def test_dramatiq_still_calls_what_we_override(function: Callable[..., Any], call: str) -> None:
    assert call in inspect.getsource(function)


def test_the_delay_queue_is_named_as_we_name_it() -> None:
    assert dq_name(QUEUE) == f"{QUEUE}.DQ" == layout.delay_queue(QUEUE)


def test_our_ack_many_is_dramatiqs_ack_per_id() -> None:
    lua = dispatch_lua()
    branch = re.search(r'^elseif command == "ack" then\n.*?(?=^--|^elseif)', lua, re.M | re.S)
    assert branch is not None, "dispatch.lua has no ack command any more"
    assert branch.group(0).rstrip() + "\n" == DRAMATIQ_ACK
    for line in DRAMATIQ_KEYS:
        assert line in lua, f"dispatch.lua no longer has: {line}"
    # ACK_MANY does the same with KEYS = heartbeats, queue_acks, queue_messages.
    assert "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])" in layout.ACK_MANY
    assert "if redis.call('SREM', KEYS[2], ARGV[i]) > 0 then" in layout.ACK_MANY
    assert "redis.call('HDEL', KEYS[3], ARGV[i])" in layout.ACK_MANY


def test_the_key_functions_spell_the_lua_names() -> None:
    assert layout.acks_key("ns", "w", "q") == "ns:__acks__.w.q"
    assert layout.heartbeats_key("ns") == "ns:__heartbeats__"
    assert layout.queue_key("ns", "q") == "ns:q"
    assert layout.messages_key("ns", "q") == "ns:q.msgs"
    assert layout.dead_key("ns", "q") == "ns:q.XQ"
    assert layout.dead_messages_key("ns", "q") == "ns:q.XQ.msgs"


# --- the behaviour, on a real redis-server ---------------------------------------------------


@pytest.fixture
def server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(server.url)
    yield connection
    connection.close()


def message(index: int, queue: str = QUEUE) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=queue, actor_name="noted", args=(index,), kwargs={}, options={}
    )


def take(broker: JobordreBroker, count: int, queue: str = QUEUE) -> tuple[Any, list[Any]]:
    broker.declare_queue(queue)
    for index in range(count):
        broker.enqueue(message(index, queue))
    consumer = broker.consume(queue, prefetch=count, timeout=100)
    taken = [next(consumer) for _ in range(count)]
    assert all(m is not None for m in taken)
    return consumer, taken


def books(client: redis.Redis, broker: JobordreBroker, queue: str = QUEUE) -> dict[str, Any]:
    ns = broker.namespace
    return {
        "held": int(client.scard(layout.acks_key(ns, broker.broker_id, queue))),
        "bodies": int(client.hlen(layout.messages_key(ns, queue))),
        "ready": int(client.llen(layout.queue_key(ns, queue))),
        "beat": client.zscore(layout.heartbeats_key(ns), broker.broker_id) is not None,
    }


def test_dramatiq_keeps_its_messages_under_the_keys_we_name(
    server: RedisServer, client: redis.Redis
) -> None:
    broker = build_broker(Settings(), server.url)
    broker.declare_queue(QUEUE)
    broker.enqueue(message(0))
    assert books(client, broker) == {"held": 0, "bodies": 1, "ready": 1, "beat": True}
    consumer, [taken] = take(broker, 1)
    redis_id = taken.options["redis_message_id"]
    assert client.sismember(layout.acks_key("dramatiq", broker.broker_id, QUEUE), redis_id)
    broker.enqueue(message(9), delay=60_000)
    assert int(client.hlen(layout.messages_key("dramatiq", layout.delay_queue(QUEUE)))) == 1
    taken.fail()
    consumer.nack(taken)
    assert client.zscore(layout.dead_key("dramatiq", QUEUE), redis_id) is not None
    assert client.hexists(layout.dead_messages_key("dramatiq", QUEUE), redis_id)
    broker.close()


def test_acks_through_the_outbound_leave_the_books_as_dramatiqs_own_acks(
    server: RedisServer, client: redis.Redis
) -> None:
    stock = build_broker(Settings(), server.url)
    consumer, taken = take(stock, 3, QUEUE)
    for m in taken:
        consumer.ack(m)  # Dramatiq's own ack: one dispatch call each
    worker, outbound = build_worker_broker(Settings(), server.url, wait_ms=100)
    other = f"{QUEUE}.ours"
    consumer, taken = take(worker, 3, other)
    assert consumer.held(taken) == taken
    for m in taken:
        consumer.ack(m)  # queued on the outbound, sent by ACK_MANY
    assert consumer.held(taken) == []
    outbound.flush()
    wait_until(lambda: books(client, worker, other)["held"] == 0, 5, "the acks flushed")
    assert books(client, worker, other) == books(client, stock, QUEUE)
    assert books(client, stock, QUEUE) == {"held": 0, "bodies": 0, "ready": 0, "beat": True}
    outbound.close()
    stock.close()
    worker.close()


def test_an_ack_of_a_message_not_held_keeps_its_body_as_dramatiqs_does(
    server: RedisServer, client: redis.Redis
) -> None:
    broker = build_broker(Settings(), server.url)
    broker.declare_queue(QUEUE)
    broker.enqueue(message(0))
    [redis_id] = [i.decode() for i in client.hkeys(layout.messages_key("dramatiq", QUEUE))]
    layout.dispatch(broker, "ack", QUEUE, redis_id, maintenance=False)
    pipe = client.pipeline(transaction=True)
    layout.ack_many(pipe, "dramatiq", broker.broker_id, QUEUE, [redis_id])
    assert pipe.execute() == [1]
    assert client.hexists(layout.messages_key("dramatiq", QUEUE), redis_id)
    broker.close()


def test_the_queries_worker_consumes_everything_but_the_commands_queue(
    server: RedisServer,
) -> None:
    broker = build_broker(Settings(), server.url, wait_ms=50)
    for queue in (COMMANDS_QUEUE, QUERIES_QUEUE):
        broker.declare_queue(queue)
    worker = QueriesWorker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        assert set(worker.consumers) == {
            QUERIES_QUEUE,
            dq_name(QUERIES_QUEUE),
            dq_name(COMMANDS_QUEUE),
        }
    finally:
        worker.stop(timeout=5_000)
        broker.close()
