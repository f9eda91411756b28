"""The actors are thin: decode, let the foundation apply, push the reply and the events.

Fast tests on Dramatiq's StubBroker and fakeredis (nothing here is about the broker itself;
the integration tier covers that against a real redis-server).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import fakeredis
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries

from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope
from shared.foundation import Foundation
from shared.sealing import open_reply
from shared.settings import Settings
from shared.signing import SigningKey
from shared.store import SqliteStore as Store
from shared.store import list_dead_letters
from tests.conftest import wait_until
from tests.factories import CPR_1, order_doc
from workers.client.credentials import provision, system_key
from workers.client.replies import wait_reply
from workers.transport.broker import queue_for
from workers.transport.outbound import Outbound
from workers.worker.actors import Runtime, declare_actors
from workers.worker.relay import Relay


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[tuple[Runtime, StubBroker, dramatiq.Worker]]:
    settings = Settings(home=tmp_path, max_retries=2, min_backoff_ms=1, max_backoff_ms=2)
    store = Store(settings.db_path)
    client = fakeredis.FakeRedis()
    running = Runtime(Foundation(store), Outbound(client), settings, Relay(store, client, settings))
    broker = StubBroker(middleware=[Retries(max_retries=2, min_backoff=1, max_backoff=2)])
    broker.emit_after("process_boot")
    declare_actors(broker, running)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=10)
    worker.start()
    stop = threading.Event()
    # A long interval: only the actor's nudge makes the relay push quickly.
    sweeper = threading.Thread(target=running.relay.sweep_forever, args=(60_000, stop))
    sweeper.start()
    yield running, broker, worker
    stop.set()
    running.relay.nudge()
    sweeper.join(10)
    worker.stop()
    running.replies.close()
    store.close()


def signed(running: Runtime, kind: CommandKind, payload: dict[str, Any]) -> Any:
    key = system_key(running.foundation.store)  # any valid key of the principal will do
    return new_envelope(kind, "system", payload, key=key)


def reply_to(running: Runtime, envelope: Envelope, key: SigningKey) -> dict[str, Any] | None:
    """The reply to ``envelope`` as its client sees it: only one that verifies for it."""
    assert envelope.signature is not None
    return wait_reply(
        running.replies.client,
        "jobordre",
        envelope.command_id,
        1000,
        accept=lambda wire: open_reply(wire, key, envelope.command_id, str(envelope.signature)),
    )


def send(broker: StubBroker, kind: CommandKind, raw: Any) -> None:
    broker.enqueue(
        dramatiq.Message(
            queue_name=queue_for(kind), actor_name=kind.value, args=(raw,), kwargs={}, options={}
        )
    )
    broker.join(queue_for(kind), fail_fast=False)


def test_a_command_is_applied_answered_and_its_event_pushed(runtime: Any) -> None:
    running, broker, _ = runtime
    key = provision(running.foundation.store, running.settings, "jobcentre:101")
    envelope = new_envelope(
        CommandKind.REGISTER_ORDER, "jobcentre:101", {"order": order_doc()}, key=key
    )
    send(broker, CommandKind.REGISTER_ORDER, envelope.to_json())
    reply = reply_to(running, envelope, key)
    assert reply is not None and reply["ok"] and reply["result"]["status"] == "processing"
    entries = wait_until(lambda: running.replies.client.xrange("jobordre:events"), 5, "the event")
    assert [json.loads(fields[b"event"])["type"] for _, fields in entries] == ["order_registered"]


def test_a_write_actor_enters_the_write_path_where_the_batch_consumer_does(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, broker, _ = runtime
    key = provision(running.foundation.store, running.settings, "jobcentre:101")
    envelope = new_envelope(
        CommandKind.REGISTER_ORDER, "jobcentre:101", {"order": order_doc()}, key=key
    )
    batches: list[list[tuple[CommandKind, Any]]] = []
    process_writes = running.process_writes

    def noted(messages: list[tuple[CommandKind, Any]]) -> list[Exception | None]:
        batches.append(list(messages))
        return process_writes(messages)

    monkeypatch.setattr(running, "process_writes", noted)
    send(broker, CommandKind.REGISTER_ORDER, envelope.to_json())
    assert batches == [[(CommandKind.REGISTER_ORDER, envelope.to_json())]]
    reply = reply_to(running, envelope, key)
    assert reply is not None and reply["ok"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param(json.dumps({"schema_version": 99}), id="wrong-schema-version"),
        pytest.param(12345, id="not-an-object"),
        pytest.param("x" * 300_000, id="huge"),
    ],
)
def test_an_undecodable_message_is_kept_with_its_reason(runtime: Any, raw: Any) -> None:
    running, broker, _ = runtime
    send(broker, CommandKind.GET_ORDER, raw)
    letters = list_dead_letters(running.foundation.store.connection())
    assert [(d["source"], d["code"]) for d in letters] == [("undecodable", "validation_error")]


def test_a_message_at_the_wrong_actor_is_refused_and_answered(runtime: Any) -> None:
    running, broker, _ = runtime
    envelope = signed(running, CommandKind.GET_ORDER, {"order_id": 1})
    send(broker, CommandKind.REGISTER_ORDER, envelope.to_json())
    reply = reply_to(running, envelope, system_key(running.foundation.store))
    assert reply is not None and reply["error"]["field"] == "kind"


def test_a_message_that_keeps_crashing_ends_as_a_dead_letter_with_its_traceback(
    runtime: Any,
) -> None:
    running, broker, _ = runtime
    key = provision(running.foundation.store, running.settings, "jobcentre:101")
    created = new_envelope(
        CommandKind.REGISTER_ORDER, "jobcentre:101", {"order": order_doc()}, key=key
    )
    send(broker, CommandKind.REGISTER_ORDER, created.to_json())
    with sqlite3.connect(running.foundation.store.path) as conn:
        conn.execute("UPDATE orders SET doc = '{}'")
    placing = new_envelope(
        CommandKind.REGISTER_PLACEMENT, "jobcentre:101", {"order_id": 1, "cpr": CPR_1}, key=key
    )
    send(broker, CommandKind.REGISTER_PLACEMENT, placing.to_json())
    reply = reply_to(running, placing, key)
    assert reply is not None and reply["error"]["code"] == "unavailable"
    [letter] = list_dead_letters(running.foundation.store.connection())
    assert letter["source"] == "crashed" and letter["command_id"] == placing.command_id
    assert "ValidationError" in letter["traceback"]
    assert CPR_1 not in json.dumps(letter), "what people see of a dead letter has no CPR"
