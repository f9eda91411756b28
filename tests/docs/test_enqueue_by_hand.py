"""A client that follows docs/protocol.md by hand, with nothing but a Redis connection, is
served: the Dramatiq message built field by field, enqueued atomically with MULTI/EXEC or
with the Lua script the document gives, the reply verified as § 7 says."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.sealing import open_reply
from shared.signing import SigningKey
from tests.conftest import ROOT, System, wait_until
from tests.factories import order_doc

pytestmark = pytest.mark.integration

PROTOCOL = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
KBH = "jobcentre:101"


def documented_lua() -> str:
    """The enqueue script exactly as docs/protocol.md gives it."""
    found = re.search(r'^EVAL "(.+?)" 2 dramatiq:', PROTOCOL, re.MULTILINE)
    assert found, "docs/protocol.md lost its EVAL example"
    return found.group(1)


def message_for(envelope_json: str, kind: CommandKind) -> tuple[str, str, str]:
    """(queue, message id, message JSON) as § 2 describes them."""
    queue = "jobordre.commands" if kind.writes else "jobordre.queries"
    message_id = str(uuid.uuid4())
    message = {
        "queue_name": queue,
        "actor_name": kind.value,
        "args": [envelope_json],
        "kwargs": {},
        "options": {"redis_message_id": message_id},
        "message_id": message_id,
        "message_timestamp": int(time.time() * 1000),
    }
    return queue, message_id, json.dumps(message)


def with_multi(client: redis.Redis, queue: str, message_id: str, message: str) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.hset(f"dramatiq:{queue}.msgs", message_id, message)
    pipe.rpush(f"dramatiq:{queue}", message_id)
    pipe.execute()


def with_lua(client: redis.Redis, queue: str, message_id: str, message: str) -> None:
    client.eval(
        documented_lua(), 2, f"dramatiq:{queue}.msgs", f"dramatiq:{queue}", message_id, message
    )


@pytest.fixture(scope="module")
def key(system: System) -> SigningKey:
    path = system.home / "by-hand" / "jobcentre_101.key"
    assert system.cli("keys", "create", KBH, "--out", str(path)).code == 0
    return SigningKey.from_json(path.read_text())


def call(
    system: System,
    key: SigningKey,
    enqueue: Callable[[redis.Redis, str, str, str], None],
    kind: CommandKind,
    payload: dict[str, Any],
) -> dict[str, Any]:
    client = system.redis.client()
    envelope = new_envelope(kind, KBH, payload, key=key)
    # The envelope as JSON text of any form: here Python's, not pydantic's.
    enqueue(client, *message_for(json.dumps(envelope.model_dump(mode="json")), kind))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        item = client.blpop([f"jobordre:reply:{envelope.command_id}"], timeout=1)
        if item is None:
            continue
        reply = open_reply(json.loads(item[1]), key, envelope.command_id, str(envelope.signature))
        if reply is not None:
            return reply
    pytest.fail(f"no reply to {kind} enqueued by hand; worker log:\n{system.worker_logs()!r}")


@pytest.mark.parametrize(
    "enqueue", [pytest.param(with_multi, id="multi-exec"), pytest.param(with_lua, id="lua")]
)
def test_a_message_enqueued_by_hand_is_served(
    system: System, key: SigningKey, enqueue: Callable[[redis.Redis, str, str, str], None]
) -> None:
    registered = call(system, key, enqueue, CommandKind.REGISTER_ORDER, {"order": order_doc()})
    assert registered["ok"], registered
    order = registered["result"]
    fetched = call(system, key, enqueue, CommandKind.GET_ORDER, {"order_id": order["id"]})
    assert fetched == {"command_id": fetched["command_id"], "ok": True, "result": order}
    # Acked (just after the reply) and gone: nothing of ours is left on the queues.
    client = system.redis.client()
    for queue in ("jobordre.commands", "jobordre.queries"):
        assert client.llen(f"dramatiq:{queue}") == 0
        wait_until(lambda q=queue: client.hlen(f"dramatiq:{q}.msgs") == 0, 10, f"{queue} acked")


def test_the_schemas_describe_the_hand_made_message() -> None:
    schema = json.loads((ROOT / "docs" / "schemas" / "dramatiq-message.json").read_text())
    _, _, message = message_for("{}", CommandKind.GET_ORDER)
    assert set(json.loads(message)) == set(schema["properties"])
    assert set(schema["required"]) <= set(json.loads(message))
