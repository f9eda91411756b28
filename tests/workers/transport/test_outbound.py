"""A worker's replies and acks go out in batches (workers/transport/outbound.py), against a real
redis-server: each job's reply before its ack, every ack takes its message off Dramatiq's
books, nothing queued is lost while Redis is away, and a stopping worker sends the rest."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis

from shared.settings import Settings
from tests.conftest import RedisServer, start_redis, wait_until
from workers.transport.broker import JobordreBroker, build_worker_broker
from workers.transport.outbound import Outbound, reply_key

pytestmark = pytest.mark.timeout(60)

QUEUE = "jobordre.test-outbound"
PREFIX = "jobordre"


def worker_broker(server: RedisServer) -> JobordreBroker:
    broker, _ = build_worker_broker(Settings(), server.url, wait_ms=100)
    assert broker.outbound is not None
    broker.declare_queue(QUEUE)
    return broker


def outbound_of(broker: JobordreBroker) -> Outbound:
    """The worker broker's outbound (a client's broker has none)."""
    assert broker.outbound is not None
    return broker.outbound


def taken(broker: JobordreBroker, count: int) -> list[Any]:
    """Enqueue ``count`` messages and take them as a consumer does (unacked, held)."""
    for index in range(count):
        broker.enqueue(
            dramatiq.Message(
                queue_name=QUEUE, actor_name="noted", args=(index,), kwargs={}, options={}
            )
        )
    consumer = broker.consume(QUEUE, prefetch=count, timeout=100)
    messages = [next(consumer) for _ in range(count)]
    assert all(message is not None for message in messages)
    return [consumer, messages]


def books(client: redis.Redis, broker: JobordreBroker) -> tuple[int, int]:
    """(messages this worker holds unacked, message bodies kept) on the queue."""
    acks = f"{broker.namespace}:__acks__.{broker.broker_id}.{QUEUE}"
    return int(client.scard(acks)), int(client.hlen(f"{broker.namespace}:{QUEUE}.msgs"))


def reply(command_id: str) -> dict[str, Any]:
    return {"command_id": command_id, "ok": True, "result": {}}


def test_acked_messages_leave_dramatiqs_books(private_redis: RedisServer) -> None:
    broker = worker_broker(private_redis)
    client = private_redis.client()
    consumer, messages = taken(broker, 5)
    assert books(client, broker) == (5, 5)
    for message in messages[:3]:
        consumer.ack(message)
    assert broker.outbound is not None
    broker.outbound.flush()
    assert books(client, broker) == (2, 2)
    # The consumer counts them as done at once, so it prefetches more meanwhile.
    assert consumer.outstanding_message_count == 2
    broker.outbound.close()


def test_replies_keep_their_time_to_live_and_come_before_their_acks(
    private_redis: RedisServer,
) -> None:
    broker = worker_broker(private_redis)
    outbound = outbound_of(broker)
    client = private_redis.client()
    consumer, messages = taken(broker, 2)
    seen: list[str] = []
    monitor_ready = threading.Event()

    done = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            monitor_ready.set()
            for entry in monitor.listen():
                seen.append(str(entry["command"]))
                if done.is_set():
                    return

    threading.Thread(target=watch, daemon=True).start()
    monitor_ready.wait(5)
    for index, message in enumerate(messages):
        outbound.push_reply(PREFIX, 30_000, reply(f"c{index}"))
        consumer.ack(message)
    wait_until(lambda: books(client, broker) == (0, 0), 5, "the acks")

    def position(word: str, needle: str) -> int:
        found = wait_until(
            lambda: [
                at for at, line in enumerate(seen) if line.startswith(word) and needle in line
            ],
            5,
            f"{word} {needle} on the monitor",
        )
        return int(found[0])

    for index, message in enumerate(messages):
        pushed = position("RPUSH", reply_key(PREFIX, f"c{index}"))
        acked = position("EVAL", message.options["redis_message_id"])
        assert pushed < acked, seen
    done.set()
    client.ping()  # one more command ends the watcher's listening
    for index in range(2):
        key = reply_key(PREFIX, f"c{index}")
        assert 0 < int(client.pttl(key)) <= 30_000
        assert json.loads(client.lpop(key) or b"{}") == reply(f"c{index}")  # type: ignore[arg-type]
    outbound.close()


def test_a_batch_held_back_goes_out_in_one_flush_and_holds_no_other_thread(
    private_redis: RedisServer,
) -> None:
    broker = worker_broker(private_redis)
    outbound = outbound_of(broker)
    client = private_redis.client()
    consumer, messages = taken(broker, 10)
    before = outbound.flushes
    with outbound.held():
        for index, message in enumerate(messages):
            outbound.push_reply(PREFIX, 30_000, reply(f"b{index}"))
            consumer.ack(message)
        time.sleep(0.3)
        assert outbound.flushes == before, "nothing sent while the batch is held"
        assert client.exists(reply_key(PREFIX, "b0")) == 0
    wait_until(lambda: books(client, broker) == (0, 0), 5, "the batch's acks")
    assert all(client.llen(reply_key(PREFIX, f"b{index}")) == 1 for index in range(10))
    assert outbound.flushes == before + 1, "the batch's replies and acks in one flush"
    with outbound.held():
        other = threading.Thread(target=outbound.push_reply, args=(PREFIX, 30_000, reply("other")))
        other.start()
        other.join()
        wait_until(
            lambda: client.llen(reply_key(PREFIX, "other")) == 1, 5, "another thread's reply"
        )
    outbound.close()


def test_a_spoiled_reply_key_neither_wedges_nor_repeats_the_flush(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Whoever can write to Redis makes a reply key a string: RPUSH onto it fails inside
    # the transaction. The rest of the flush must land once, and the next flushes too.
    broker = worker_broker(private_redis)
    outbound = outbound_of(broker)
    client = private_redis.client()
    client.set(reply_key(PREFIX, "spoiled"), "not a list")
    consumer, messages = taken(broker, 1)
    outbound.push_reply(PREFIX, 30_000, reply("spoiled"))
    outbound.push_reply(PREFIX, 30_000, reply("fine"))
    consumer.ack(messages[0])
    outbound.flush()
    assert client.llen(reply_key(PREFIX, "fine")) == 1
    assert books(client, broker) == (0, 0)
    assert "Redis refused 1 of the" in caplog.text
    outbound.push_reply(PREFIX, 30_000, reply("later"))
    outbound.flush()
    assert client.llen(reply_key(PREFIX, "later")) == 1
    assert client.llen(reply_key(PREFIX, "fine")) == 1  # not pushed again
    outbound.close()


@pytest.mark.parametrize(
    "closing",
    [pytest.param(False, id="the-flusher-retries"), pytest.param(True, id="close-retries")],
)
def test_nothing_queued_is_lost_while_redis_is_away(tmp_path: Path, closing: bool) -> None:
    server = start_redis(tmp_path / "redis")
    port = server.port
    client = server.client()
    outbound = Outbound(redis.Redis.from_url(server.url, socket_timeout=2))
    server.stop()
    outbound.push_reply(PREFIX, 60_000, reply("while-away"))
    closer = threading.Thread(target=outbound.close) if closing else None
    if closer is not None:
        closer.start()
    time.sleep(0.5)  # failing flushes meanwhile
    server = start_redis(tmp_path / "redis", port)
    try:
        found = wait_until(
            lambda: client.lpop(reply_key(PREFIX, "while-away")), 10, "the reply after Redis"
        )
        assert json.loads(found) == reply("while-away")
        if closer is not None:
            closer.join(10)
            assert not closer.is_alive()
        else:
            outbound.close()
        assert outbound.writes == 1
    finally:
        server.stop()


def test_a_stopping_worker_sends_what_it_queued(private_redis: RedisServer) -> None:
    broker = worker_broker(private_redis)
    client = private_redis.client()
    consumer, messages = taken(broker, 3)
    received: list[Any] = []

    @dramatiq.actor(actor_name="noted", queue_name=QUEUE, broker=broker)
    def noted(index: int) -> None:
        received.append(index)

    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    for message in messages:
        consumer.ack(message)  # queued, not sent yet unless the flusher was quick
    worker.start()
    worker.stop()
    # The worker's shutdown flushed the outbound: nothing of the three is left unacked.
    assert broker.outbound is not None
    assert broker.outbound.closed
    assert books(client, broker) == (0, 0)
