"""Garbage pushed straight onto the Redis queues is kept with its reason; the worker serves on."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import System, wait_until
from tests.factories import CPR_1, order_doc

pytestmark = pytest.mark.integration

QUEUE = "jobordre.commands"


def dramatiq_message(actor: str, args: list[Any]) -> bytes:
    return json.dumps(
        {
            "queue_name": QUEUE,
            "actor_name": actor,
            "args": args,
            "kwargs": {},
            "options": {},
            "message_id": str(uuid.uuid4()),
            "message_timestamp": 0,
        }
    ).encode()


def push_raw(system: System, data: bytes) -> None:
    """What any process with Redis access can do: write a message id and body by hand."""
    client = system.redis.client()
    message_id = str(uuid.uuid4())
    client.hset(f"dramatiq:{QUEUE}.msgs", message_id, data)
    client.rpush(f"dramatiq:{QUEUE}", message_id)


GARBAGE = [
    pytest.param(b"\x00\xffnot json at all", "not a Dramatiq message", id="not-json"),
    pytest.param(b'{"actor_name": 1}', "not a Dramatiq message", id="json-not-a-message"),
    pytest.param(
        dramatiq_message("register_order", ["{broken"]),
        "not a JSON document",
        id="envelope-not-json",
    ),
    pytest.param(
        dramatiq_message("register_order", [json.dumps({"schema_version": 7})]),
        "schema_version",
        id="wrong-schema-version",
    ),
    pytest.param(
        dramatiq_message("register_order", ["x" * 400_000]), "larger than", id="huge-payload"
    ),
    pytest.param(
        dramatiq_message("drop_tables", [json.dumps({"cpr": CPR_1})]),
        "is unknown",
        id="unknown-kind",
    ),
]


@pytest.mark.parametrize(("data", "reason"), GARBAGE)
def test_is_dead_lettered_with_its_reason_while_the_worker_keeps_serving(
    system: System, tmp_path: Path, data: bytes, reason: str
) -> None:
    before = len(system.json("dead", "list", "--limit", "1000")["dead_letters"])
    push_raw(system, data)

    def kept() -> list[dict[str, Any]]:
        letters: list[dict[str, Any]] = system.json("dead", "list", "--limit", "1000")[
            "dead_letters"
        ]
        return letters[: len(letters) - before]

    [letter] = wait_until(kept, 30, "the garbage to be dead-lettered")
    assert letter["source"] == "undecodable" and reason in letter["reason"]
    assert CPR_1 not in json.dumps(letter)
    order = tmp_path / "order.json"
    order.write_text(json.dumps(order_doc()))
    served = system.json("order", "register", "--file", str(order), "--as", "jobcentre:101")
    assert served["status"] == "processing"
    client = system.redis.client()
    wait_until(lambda: client.llen(f"dramatiq:{QUEUE}") == 0, 10, "the queue to empty")

    def all_acked() -> bool:
        return not any(client.scard(key) for key in client.keys("dramatiq:__acks__.*"))

    # Nothing is left unacked to come back after a restart.
    wait_until(all_acked, 10, "every message on the queue to be acked")


def test_an_unsigned_250_kb_command_is_kept_cut_not_whole(system: System) -> None:
    command_id = f"unsigned-{uuid.uuid4().hex}"
    envelope = {
        "schema_version": 1,
        "kind": "register_order",
        "command_id": command_id,
        "principal": "jobcentre:101",
        "correlation_id": "x",
        "sent_at": datetime.now(UTC).isoformat(),
        "payload": {"order": order_doc(description="x" * 250_000)},
    }
    push_raw(system, dramatiq_message("register_order", [json.dumps(envelope)]))

    def kept() -> list[Any]:
        return system.sql(
            "SELECT code, length(message), original, message FROM dead_letters"
            " WHERE command_id = ?",
            (command_id,),
        )

    [(code, length, original, message)] = wait_until(kept, 30, "the unsigned command's letter")
    assert code == "forbidden" and original is None
    assert length < 17_000 and "characters kept]" in message
