"""Fair share of the queries queue: one organisation's burst does not delay another's query.

Real redis-server. The fetch script on its own (messages put on the queue the way
docs/protocol.md § 2 tells any client to), then a real worker process: another
organisation's ``get_order`` is answered while most of one jobcentre's burst of searches
still waits. (How long it waits is a benchmark figure: ``jobordre bench``.)
"""

from __future__ import annotations

import json
import time
import uuid
from typing import cast

import pytest
import redis

from shared.commands import CommandKind
from tests.conftest import RedisServer, System
from tests.factories import order_doc
from workers.client import Client
from workers.ops.recovery import acks_key
from workers.transport.broker import QUERIES_QUEUE
from workers.transport.fair_queue import SORT_BATCH, FairQueue, own_prefix, ring_key

pytestmark = pytest.mark.integration

NS = "dramatiq"
QUEUE = f"{NS}:{QUERIES_QUEUE}"
WORKER = "worker-under-test"
A, B, C = "jobcentre:101", "akasse:3f", "employer:25313763"


def enqueue(client: redis.Redis, principal: str | None, *, raw: bytes | None = None) -> bytes:
    """A query message of ``principal`` on the queue, enqueued as any client does."""
    message_id = str(uuid.uuid4())
    envelope = json.dumps({"principal": principal, "kind": "search_orders", "payload": {}})
    body = (
        raw
        or json.dumps(
            {
                "queue_name": QUERIES_QUEUE,
                "actor_name": "search_orders",
                "args": [envelope],
                "kwargs": {},
                "options": {"redis_message_id": message_id},
                "message_id": message_id,
                "message_timestamp": int(time.time() * 1000),
            }
        ).encode()
    )
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(f"{QUEUE}.msgs", message_id, body)
        pipe.rpush(QUEUE, message_id)
        pipe.execute()
    return body


def principal_of(body: bytes) -> str:
    envelope = json.loads(json.loads(body)["args"][0])
    return str(envelope["principal"])


@pytest.fixture
def fair(private_redis: RedisServer) -> FairQueue:
    return FairQueue(private_redis.client(), NS, QUERIES_QUEUE)


def fetch_all(fair: FairQueue, prefetch: int = 1) -> list[bytes]:
    taken: list[bytes] = []
    while batch := fair.fetch(WORKER, prefetch, int(time.time() * 1000)):
        taken.extend(batch)
    return taken


def test_a_query_behind_a_burst_of_another_organisation_is_served_at_once(
    private_redis: RedisServer, fair: FairQueue
) -> None:
    client = private_redis.client()
    for _ in range(1000):
        enqueue(client, A)
    enqueue(client, B)
    # Each fetch sorts SORT_BATCH more of the backlog: B's query is found within a few
    # fetches, and then served at once, after a handful of A's instead of a thousand.
    served: list[str] = []
    while B not in served:
        served.extend(principal_of(body) for body in fair.fetch(WORKER, 2, 0))
    assert len(served) <= 2 * (1000 // SORT_BATCH + 1)


def test_organisations_take_turns_and_each_keeps_its_own_order(
    private_redis: RedisServer, fair: FairQueue
) -> None:
    client = private_redis.client()
    sent = [enqueue(client, who) for who in [A] * 5 + [B] * 3 + [C]]
    taken = fetch_all(fair, prefetch=3)
    assert [principal_of(b) for b in taken[:6]] == [A, B, C, A, B, A]
    for who in (A, B, C):
        assert [b for b in taken if principal_of(b) == who] == [
            b for b in sent if principal_of(b) == who
        ]


def test_every_message_is_in_exactly_one_place_and_the_queues_view_counts_it(
    private_redis: RedisServer, fair: FairQueue
) -> None:
    client = private_redis.client()
    sent = {json.loads(enqueue(client, who))["message_id"].encode() for who in [A] * 30 + [B] * 5}
    taken = fair.fetch(WORKER, 7, 0)
    held = cast("set[bytes]", client.smembers(acks_key(NS, WORKER, QUERIES_QUEUE)))
    assert {json.loads(b)["message_id"].encode() for b in taken} == held
    waiting, heads = fair.waiting()
    on_lists = set(client.lrange(QUEUE, 0, -1))
    for who in cast("list[bytes]", client.lrange(ring_key(NS, QUERIES_QUEUE), 0, -1)):
        on_lists |= set(client.lrange(own_prefix(NS, QUERIES_QUEUE) + who.decode(), 0, -1))
    assert held | on_lists == sent
    assert not held & on_lists
    assert waiting + client.llen(QUEUE) == len(sent) - 7
    assert len(heads) == 2  # the oldest waiting id of each organisation


def test_a_requeued_message_is_sorted_again(private_redis: RedisServer, fair: FairQueue) -> None:
    client = private_redis.client()
    body = enqueue(client, A)
    (taken,) = fair.fetch(WORKER, 1, 0)
    # What Dramatiq's requeue and dead-worker recovery do: the id back on the queue.
    message_id = json.loads(taken)["message_id"]
    client.srem(acks_key(NS, WORKER, QUERIES_QUEUE), message_id)
    client.rpush(QUEUE, message_id)
    assert fetch_all(fair) == [body]


def test_a_message_without_a_readable_envelope_is_still_served(
    private_redis: RedisServer, fair: FairQueue
) -> None:
    client = private_redis.client()
    garbage = enqueue(client, None, raw=b"not a message")
    unnamed = enqueue(client, None)
    assert sorted(fetch_all(fair)) == sorted([garbage, unnamed])


def test_a_worker_answers_another_organisations_query_before_a_burst_is_done(
    bare_system: System,
) -> None:
    system = bare_system
    system.start_worker(processes=1, threads=4)
    burst, other = Client(system.settings(), A), Client(system.settings(), B)
    try:
        order_id = burst.call(CommandKind.REGISTER_ORDER, {"order": order_doc()})["id"]
        other.call(CommandKind.GET_ORDER, {"order_id": order_id})  # its key, made up front
        system.stop_workers()
        # The burst is all queued, and the other organisation's query behind it, when the
        # worker starts.
        searches = [
            burst.send(CommandKind.SEARCH_ORDERS, {"text": "lager", "limit": 50})
            for _ in range(1500)
        ]
        behind = other.send(CommandKind.GET_ORDER, {"order_id": order_id})
        system.start_worker(processes=1, threads=4)
        answered = other.wait(behind, timeout_ms=60_000)
        left = count_waiting(system.redis.client())
        assert answered["id"] == order_id
        assert left >= 750, f"only {left} of the 1500 searches still waited"
        # Nothing of the burst is lost: every search is answered.
        for command_id in searches:
            assert burst.wait(command_id, timeout_ms=60_000)["total"] >= 0
    finally:
        burst.close()
        other.close()


def count_waiting(client: redis.Redis) -> int:
    waiting, _ = FairQueue(client, NS, QUERIES_QUEUE).waiting()
    return waiting + int(client.llen(QUEUE))
