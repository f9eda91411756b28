"""The commands queue is taken in batches (workers/worker/command_batches.py), against a real
redis-server: one transaction per batch, each command answered as alone, a failing one
retried alone, and nothing lost or applied twice when a worker stops mid-stream."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.middleware import MiddlewareError

from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope
from shared.foundation import Foundation
from shared.sealing import open_reply
from shared.settings import Settings
from shared.signing import SigningKey
from shared.store import SqliteStore, list_dead_letters
from tests.conftest import RedisServer, wait_until
from tests.factories import order_doc
from tests.workers.test_garbage import dramatiq_message
from workers.bench.generator import Generator
from workers.client.credentials import provision
from workers.client.replies import wait_reply
from workers.transport.broker import COMMANDS_QUEUE, QueriesWorker, build_worker_broker
from workers.worker.actors import Runtime, declare_actors
from workers.worker.command_batches import CommandBatches
from workers.worker.relay import Relay

pytestmark = pytest.mark.integration

K = CommandKind
JOBCENTRE = "jobcentre:101"
#: Retries of a failing command before it is a dead letter (short backoff, for the test).
RETRIES = 2


@dataclass
class Serving:
    """The pieces of one worker process, built in this process on a real Redis."""

    settings: Settings
    key: SigningKey
    runtime: Runtime
    actors: dict[CommandKind, dramatiq.Actor[Any, Any]]
    broker: dramatiq.Broker
    workers: list[dramatiq.Worker]

    @property
    def store(self) -> SqliteStore:
        store = self.runtime.foundation.store
        assert isinstance(store, SqliteStore)
        return store

    def send(self, kind: CommandKind, payload: dict[str, Any]) -> Envelope:
        envelope = new_envelope(kind, JOBCENTRE, payload, key=self.key)
        self.actors[kind].send(envelope.to_json())
        return envelope

    def start(self) -> dramatiq.Worker:
        """A worker as ``jobordre worker`` starts one: its threads for queries, and the
        batch consumer for commands."""
        worker = QueriesWorker(self.broker, worker_threads=2, worker_timeout=50)
        worker.start()
        self.workers.append(worker)
        return worker

    def restart(self) -> None:
        """Stop the worker and start a new one (a new broker id, as a new process)."""
        for worker in self.workers:
            worker.stop(timeout=10_000)
        self.workers.clear()
        self.store.close()
        self.runtime, self.actors, self.broker = _build(self.settings)
        self.start()

    def reply(self, envelope: Envelope, timeout_ms: int = 10_000) -> dict[str, Any] | None:
        return wait_reply(
            self.runtime.replies.client,
            self.settings.redis_prefix,
            envelope.command_id,
            timeout_ms,
            accept=lambda wire: open_reply(
                wire, self.key, envelope.command_id, str(envelope.signature)
            ),
        )

    def count(self, sql: str) -> int:
        with sqlite3.connect(self.settings.db_path) as conn:
            return int(conn.execute(sql).fetchone()[0])


def _build(
    settings: Settings,
) -> tuple[Runtime, dict[CommandKind, dramatiq.Actor[Any, Any]], dramatiq.Broker]:
    """What ``jobordre worker`` builds in a process (workers/worker/runner.py), but the ops
    agent."""
    url = str(settings.redis_url)
    broker, outbound = build_worker_broker(settings, url, wait_ms=settings.worker_poll_ms)
    store = SqliteStore(settings.db_path)
    runtime = Runtime(Foundation(store), outbound, settings, Relay(store, broker.client, settings))
    actors = declare_actors(broker, runtime)
    broker.add_middleware(CommandBatches(runtime))
    return runtime, actors, broker


@pytest.fixture
def serving(private_redis: RedisServer, tmp_path: Path) -> Iterator[Serving]:
    settings = Settings(
        home=tmp_path,
        redis_url=private_redis.url,
        max_retries=RETRIES,
        min_backoff_ms=10,
        max_backoff_ms=20,
        worker_poll_ms=50,
    )
    runtime, actors, broker = _build(settings)
    key = provision(runtime.foundation.store, settings, JOBCENTRE)
    running = Serving(settings, key, runtime, actors, broker, [])
    yield running
    for worker in running.workers:
        worker.stop(timeout=10_000)
    running.store.close()


def _register(serving: Serving, count: int) -> list[int]:
    ids = []
    for _ in range(count):
        envelope = new_envelope(
            K.REGISTER_ORDER, JOBCENTRE, {"order": order_doc()}, key=serving.key
        )
        ids.append(serving.runtime.foundation.handle(envelope)["result"]["id"])
    return ids


def _held(serving: Serving) -> int:
    """Messages of the commands queue taken by a worker and neither acked nor nacked."""
    client = serving.runtime.replies.client
    return sum(
        int(client.scard(key)) for key in client.keys(f"dramatiq:__acks__.*.{COMMANDS_QUEUE}")
    )


def test_commands_waiting_together_share_one_transaction_and_a_failing_one_is_retried_alone(
    serving: Serving,
) -> None:
    good, poisoned = _register(serving, 2)
    # A corrupt order: every placement on it crashes (an infrastructure error, not a rule).
    with sqlite3.connect(serving.settings.db_path) as conn:
        conn.execute("UPDATE orders SET doc = '{}' WHERE id = ?", (poisoned,))
    generator = Generator(3)
    placed = [serving.send(K.REGISTER_PLACEMENT, generator.placement(good)) for _ in range(10)]
    doomed = serving.send(K.REGISTER_PLACEMENT, generator.placement(poisoned))
    before = serving.runtime.foundation.writes.batches
    serving.start()
    replies = [serving.reply(envelope) for envelope in placed]
    assert all(reply is not None and reply["ok"] for reply in replies), replies
    last = serving.reply(doomed)
    assert last is not None and last["error"]["code"] == "unavailable"
    assert "dead letter" in last["error"]["message"]
    # One transaction for the eleven, then one for each retry of the failing one alone.
    assert serving.runtime.foundation.writes.batches - before == 1 + RETRIES
    assert serving.count("SELECT COUNT(*) FROM placements") == 10
    [letter] = list_dead_letters(serving.store.connection())
    assert (letter["source"], letter["command_id"]) == ("crashed", doomed.command_id)
    assert "ValidationError" in letter["traceback"]
    wait_until(lambda: _held(serving) == 0, 10, "every message acked or nacked")


def test_garbage_in_a_batch_is_kept_and_the_rest_is_applied(serving: Serving) -> None:
    [order] = _register(serving, 1)
    client = serving.runtime.replies.client
    generator = Generator(4)
    first = serving.send(K.REGISTER_PLACEMENT, generator.placement(order))
    for number, data in enumerate(
        [b"\x00\xffnot a message", dramatiq_message("drop_tables", ["{}"])]
    ):
        client.hset(f"dramatiq:{COMMANDS_QUEUE}.msgs", f"garbage-{number}", data)
        client.rpush(f"dramatiq:{COMMANDS_QUEUE}", f"garbage-{number}")
    last = serving.send(K.REGISTER_PLACEMENT, generator.placement(order))
    serving.start()
    assert all((serving.reply(each) or {}).get("ok") for each in (first, last))
    wait_until(lambda: len(list_dead_letters(serving.store.connection())) == 2, 10, "both kept")
    letters = list_dead_letters(serving.store.connection())
    assert {d["source"] for d in letters} == {"undecodable"}
    assert any("drop_tables" in d["reason"] for d in letters), letters
    wait_until(lambda: _held(serving) == 0, 10, "the garbage taken off the queue")


def test_a_worker_stopped_mid_stream_loses_nothing_and_applies_nothing_twice(
    serving: Serving,
) -> None:
    [order] = _register(serving, 1)
    generator = Generator(5)
    sent = [serving.send(K.REGISTER_PLACEMENT, generator.placement(order)) for _ in range(300)]
    serving.start()
    assert serving.reply(sent[0]) is not None
    [first] = serving.workers
    first.stop(timeout=10_000)
    serving.workers.clear()
    assert _held(serving) == 0, "a stopped worker holds no message: acked, or given back"
    serving.restart()
    # A client takes its reply off the list: the first one was taken above.
    replies = [serving.reply(envelope) for envelope in sent[1:]]
    assert all(reply is not None and reply["ok"] for reply in replies)
    assert serving.count("SELECT COUNT(*) FROM placements") == 300, "each applied once"


class _Refused(MiddlewareError):
    """What a middleware raises to stop a message (Dramatiq logs and ignores the others)."""


class _Refusing(dramatiq.Middleware):
    """A middleware that refuses the messages of some command ids before they run."""

    def __init__(self, command_ids: set[str]) -> None:
        self.command_ids = command_ids

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        if any(command_id in message.args[0] for command_id in self.command_ids):
            raise _Refused("refused by a middleware")


def test_a_message_a_middleware_refuses_fails_alone(serving: Serving) -> None:
    [order] = _register(serving, 1)
    generator = Generator(6)
    placed = [serving.send(K.REGISTER_PLACEMENT, generator.placement(order)) for _ in range(5)]
    refused = serving.send(K.REGISTER_PLACEMENT, generator.placement(order))
    serving.broker.add_middleware(_Refusing({refused.command_id}))
    serving.start()
    assert all((serving.reply(each) or {}).get("ok") for each in placed)
    last = serving.reply(refused)
    assert last is not None and last["error"]["code"] == "unavailable"
    [letter] = list_dead_letters(serving.store.connection())
    assert (letter["source"], letter["command_id"]) == ("crashed", refused.command_id)
    assert serving.count("SELECT COUNT(*) FROM placements") == 5
    wait_until(lambda: _held(serving) == 0, 10, "every message acked or nacked")


def test_a_clients_message_options_never_cut_a_batch_short(serving: Serving) -> None:
    # Dramatiq message options are not signed: a client sets time_limit (the batch shares
    # one thread, so one message's limit would be the whole batch's) and max_retries.
    [order] = _register(serving, 1)
    generator = Generator(7)
    placed = [serving.send(K.REGISTER_PLACEMENT, generator.placement(order)) for _ in range(5)]
    hostile = new_envelope(
        K.REGISTER_PLACEMENT, JOBCENTRE, generator.placement(order), key=serving.key
    )
    serving.actors[K.REGISTER_PLACEMENT].send_with_options(
        args=(hostile.to_json(),), time_limit=1, max_retries=0, min_backoff=1
    )
    # Dramatiq's own worker process starts the time-limit watch at its boot; so does this
    # one, so that a limit, if a client could set it, would be enforced.
    serving.broker.emit_after("process_boot")
    before = serving.runtime.foundation.writes.batches
    # The store is busy for longer than Dramatiq's time-limit check (every second), so a
    # limit of 1 ms, if heeded, would interrupt the batch while it waits.
    blocker = sqlite3.connect(serving.settings.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        serving.start()
        wait_until(lambda: _held(serving) == 6, 10, "the batch taken")
        time.sleep(2.5)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    replies = [serving.reply(each) for each in [*placed, hostile]]
    assert all(reply is not None and reply["ok"] for reply in replies), replies
    assert serving.runtime.foundation.writes.batches - before == 1, "one batch, never cut"
    assert list_dead_letters(serving.store.connection()) == []
