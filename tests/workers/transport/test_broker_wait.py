"""Idle consumers wait on their queue's own list (workers/transport/broker.py), against a real
redis-server: a message from any enqueuer wakes them at once, nothing is taken or
reordered by the wait, and an idle worker makes a handful of broker calls, not a poll
every few milliseconds."""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
import pytest
import redis

from shared.settings import Settings
from tests.conftest import RedisServer
from workers.transport.broker import JobordreBroker, build_broker, build_worker_broker

pytestmark = pytest.mark.timeout(60)

QUEUE = "jobordre.test-wait"


def message(index: int) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=QUEUE, actor_name="noted", args=(index,), kwargs={}, options={}
    )


@pytest.fixture
def server(private_redis: RedisServer) -> RedisServer:
    return private_redis


def broker_on(server: RedisServer, wait_ms: int | None) -> JobordreBroker:
    if wait_ms is None:
        broker = build_broker(Settings(), server.url)
    else:
        broker, _ = build_worker_broker(Settings(), server.url, wait_ms=wait_ms)
    broker.declare_queue(QUEUE)
    return broker


def fetch_in_background(broker: JobordreBroker) -> tuple[threading.Thread, list[Any]]:
    found: list[Any] = []

    def fetch() -> None:
        started = time.monotonic()
        found.append(broker.do_fetch(QUEUE, 10))
        found.append(time.monotonic() - started)

    thread = threading.Thread(target=fetch)
    thread.start()
    return thread, found


def test_a_waiting_consumer_is_woken_by_a_message_from_any_enqueuer(server: RedisServer) -> None:
    # A long wait, so the message can only have been seen through the wake-up, not a re-poll.
    broker = broker_on(server, wait_ms=5_000)
    thread, found = fetch_in_background(broker)
    time.sleep(0.3)  # the consumer is waiting on the empty queue by now
    # Enqueued by another broker object, as a client in another process would: nothing
    # rings anything beyond Dramatiq's own enqueue script.
    sender = build_broker(Settings(), server.url)
    sender.enqueue(message(1))
    thread.join(10)
    fetched, waited_s = found
    assert len(fetched) == 1 and b'"args":[1]' in fetched[0]
    assert waited_s < 4.5, "the consumer slept through the message until its wait ended"


def test_the_wait_takes_nothing_and_keeps_the_order(server: RedisServer) -> None:
    broker = broker_on(server, wait_ms=2_000)
    thread, found = fetch_in_background(broker)
    time.sleep(0.3)
    sender = build_broker(Settings(), server.url)
    for index in range(5):
        sender.enqueue(message(index))
    thread.join(10)
    fetched = found[0] + broker.do_fetch(QUEUE, 10)
    order = [int(body.split(b'"args":[')[1].split(b"]")[0]) for body in fetched]
    assert order == [0, 1, 2, 3, 4]


def test_a_wait_that_ends_empty_returns_nothing(server: RedisServer) -> None:
    broker = broker_on(server, wait_ms=200)
    thread, found = fetch_in_background(broker)
    thread.join(10)
    assert found[0] == []
    assert 0.15 < found[1] < 5


def calls_of(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.parametrize(
    ("wait_ms", "most_fetches"),
    [
        pytest.param(1_000, 40, id="waiting-consumers"),
    ],
)
def test_an_idle_worker_makes_few_broker_calls(
    server: RedisServer, wait_ms: int, most_fetches: int
) -> None:
    broker = broker_on(server, wait_ms=wait_ms)

    @dramatiq.actor(actor_name="noted", queue_name=QUEUE, broker=broker)
    def noted(index: int) -> None:
        pass

    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=wait_ms)
    worker.start()
    client = server.client()
    try:
        time.sleep(1)  # started and settled
        scripts = calls_of(client, "evalsha")
        time.sleep(3)
        # Two consumers (the queue and its delay queue): a wait each per second and its
        # fetches. Dramatiq's stock poll (10 ms) would make ~600 calls in these 3 s.
        assert calls_of(client, "evalsha") - scripts <= most_fetches
    finally:
        worker.stop(timeout=5_000)


def test_a_redis_without_blmove_is_polled(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_on(server, wait_ms=1_000)

    def unknown(*args: Any, **kwargs: Any) -> None:
        raise redis.ResponseError("unknown command 'BLMOVE', with args beginning with: ")

    monkeypatch.setattr(broker.client, "blmove", unknown)
    assert broker.do_fetch(QUEUE, 10) == []
    assert broker.queue_wait_ms is None  # stock polling from now on
    build_broker(Settings(), server.url).enqueue(message(7))
    assert len(broker.do_fetch(QUEUE, 10)) == 1
