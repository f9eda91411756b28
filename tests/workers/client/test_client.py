"""The client waits for many commands at once (``Client.wait_many``), against a real
redis-server: every command gets its own reply, in the order the replies arrive, a refusal
comes back as its error, a forgery never answers, and what is not answered in time is
named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope
from shared.errors import InvalidInput, JobordreError, NotFound, Unavailable
from shared.sealing import seal_reply
from shared.settings import Settings
from shared.signing import SigningKey
from tests.conftest import RedisServer, System
from tests.factories import order_doc
from workers.client import Client
from workers.client.replies import WAIT_WINDOW
from workers.transport.outbound import reply_key

pytestmark = pytest.mark.timeout(60)

K = CommandKind
KBH = "jobcentre:101"
PREFIX = "jobordre"


@pytest.fixture
def client(private_redis: RedisServer, tmp_path: Path) -> Iterator[Client]:
    """A client of the jobcentre on a Redis with no worker: the tests answer for it."""
    made = Client(
        Settings(home=tmp_path, redis_prefix=PREFIX),
        KBH,
        url=private_redis.url,
        key=SigningKey.generate(KBH),
    )
    yield made
    made.close()


def sent(client: Client, count: int) -> list[Envelope]:
    """``count`` commands sent by ``client`` (they wait on the queue: no worker runs)."""
    envelopes = [
        new_envelope(K.GET_ORDER, KBH, {"order_id": index + 1}, key=client.key)
        for index in range(count)
    ]
    for envelope in envelopes:
        client.send_envelope(envelope)
    return envelopes


def answer(
    client: Client, envelope: Envelope, reply: dict[str, Any], key: SigningKey | None = None
) -> None:
    """Push a sealed reply to ``envelope`` as a worker does (with another key: a forgery)."""
    assert envelope.signature is not None
    wire = seal_reply(
        {"command_id": envelope.command_id, **reply}, key or client.key, envelope.signature
    )
    client.redis.rpush(reply_key(PREFIX, envelope.command_id), json.dumps(wire))


def test_every_command_gets_its_own_reply_and_a_forgery_answers_none(
    client: Client,
) -> None:
    envelopes = sent(client, WAIT_WINDOW + 10)  # more than one round trip looks at
    forger = SigningKey(KBH, client.key.key_id, "not-the-secret")
    # A forgery queued ahead of the real reply, on the first command's list.
    answer(client, envelopes[0], {"ok": True, "result": {"forged": True}}, key=forger)
    for index, envelope in reversed(list(enumerate(envelopes))):
        if index == 3:
            error = NotFound("job order 4: not found; check the id").to_dict()
            answer(client, envelope, {"ok": False, "error": error})
        else:
            answer(client, envelope, {"ok": True, "result": {"n": index}})
    pairs = list(client.wait_many([envelope.command_id for envelope in envelopes], 5_000))
    outcomes = dict(pairs)
    assert len(pairs) == len(outcomes) == len(envelopes), "each command once"
    assert set(outcomes) == {envelope.command_id for envelope in envelopes}
    refused = outcomes.pop(envelopes[3].command_id)
    assert isinstance(refused, NotFound) and refused.code == "not_found"
    assert [
        outcomes[envelope.command_id] for envelope in envelopes if envelope != envelopes[3]
    ] == [{"n": index} for index in range(len(envelopes)) if index != 3], (
        "the forgery answered nothing"
    )


def test_what_is_not_answered_in_time_is_named(client: Client) -> None:
    first, second, third = sent(client, 3)
    answer(client, first, {"ok": True, "result": {}})
    answer(client, third, {"ok": True, "result": {}})
    got: list[str] = []
    ids = [envelope.command_id for envelope in (first, second, third)]
    with pytest.raises(Unavailable) as raised:
        got.extend(command_id for command_id, _ in client.wait_many(ids, 300))
    assert sorted(got) == sorted([first.command_id, third.command_id])
    assert "1 of 3 commands" in raised.value.message
    assert second.command_id in raised.value.message, "the one to resend is named"
    # It can still be waited for: a late reply is taken.
    answer(client, second, {"ok": True, "result": {"late": True}})
    assert list(client.wait_many([second.command_id], 2_000)) == [
        (second.command_id, {"late": True})
    ]


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(["never-sent"], id="never-sent"),
        pytest.param("answered", id="already-answered"),
    ],
)
def test_only_commands_this_client_awaits_can_be_waited_for(
    client: Client, ids: list[str] | str
) -> None:
    (envelope,) = sent(client, 1)
    if ids == "answered":
        answer(client, envelope, {"ok": True, "result": {}})
        assert len(list(client.wait_many([envelope.command_id], 2_000))) == 1
        ids = [envelope.command_id]
    with pytest.raises(InvalidInput) as raised:
        list(client.wait_many(ids, 100))
    assert raised.value.field == "command_ids"
    assert "jobordre result" in raised.value.message


@pytest.mark.integration
def test_a_real_worker_answers_many_commands_in_flight(system: System) -> None:
    client = Client(system.settings(), KBH)
    try:
        order = client.call(K.REGISTER_ORDER, {"order": order_doc()})
        reads = [client.send(K.GET_ORDER, {"order_id": order["id"]}) for _ in range(30)]
        changes = [
            client.send(K.CHANGE_ORDER_STATUS, {"order_id": order["id"], "status": status})
            for status in ("inactivated", "processing", "inactivated")
        ]
        missing = client.send(K.GET_ORDER, {"order_id": order["id"] + 1000})
        outcomes = dict(client.wait_many([*reads, *changes, missing], 30_000))
    finally:
        client.close()
    assert len(outcomes) == 34
    assert all(outcomes[command_id]["id"] == order["id"] for command_id in reads)  # type: ignore[index]
    assert sorted(outcomes[command_id]["version"] for command_id in changes) == [2, 3, 4]  # type: ignore[index]
    failed = outcomes[missing]
    assert isinstance(failed, JobordreError) and failed.code == "not_found"
