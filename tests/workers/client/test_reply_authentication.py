"""Only the foundation answers a command: forged, tampered, replayed and other organisations'
copies of it, queued ahead of and behind the real one, never speak for it.

Real redis-server, real worker processes; the attacker can read and write Redis and holds a
valid key of its own organisation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest
import redis

from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope
from shared.errors import Forbidden
from shared.identifiers import validate_cpr
from shared.signing import SigningKey
from tests.conftest import System, wait_until
from tests.factories import EMPLOYER_A, order_doc
from workers.client import Client
from workers.transport.broker import queue_for
from workers.transport.outbound import reply_key

pytestmark = pytest.mark.integration

K = CommandKind
KBH, EMPLOYER = "jobcentre:101", f"employer:{EMPLOYER_A}"
#: Rounds of the attack; each places a new person with copies around the real command.
ROUNDS = 25


@pytest.fixture
def clients(system: System) -> Iterator[dict[str, Client]]:
    settings = system.settings(reply_timeout_ms=20_000)
    made = {who: Client(settings, who) for who in (KBH, EMPLOYER)}
    yield made
    for client in made.values():
        client.close()


def push(client: redis.Redis, envelope_json: str, kind: CommandKind) -> None:
    """What anyone with Redis access can do: put a message on a queue by hand."""
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_for(kind),
        actor_name=kind.value,
        args=(envelope_json,),
        kwargs={},
        options={},
    )
    message_id = message.message_id
    client.hset(f"dramatiq:{message.queue_name}.msgs", message_id, message.encode())
    client.rpush(f"dramatiq:{message.queue_name}", message_id)


def copies(real: Envelope, employer: Client) -> list[str]:
    """Every kind of copy the review tried, each under the real command's id."""
    document = json.loads(real.to_json())
    tampered = {**document, "payload": {**document["payload"], "referral": True}}
    forged = new_envelope(
        real.kind,
        KBH,
        {"order_id": real.payload["order_id"], "cpr": "0101901234"},
        command_id=real.command_id,
        key=SigningKey(KBH, str(real.key_id), "not-the-secret-" + uuid.uuid4().hex),
    )
    theirs = new_envelope(
        real.kind,
        EMPLOYER,
        {"order_id": real.payload["order_id"], "cpr": "0101901234"},
        command_id=real.command_id,
        key=employer.key,
    )
    return [json.dumps(tampered), forged.to_json(), theirs.to_json()]


def forged_reply(command_id: str, key_id: str) -> str:
    return json.dumps(
        {
            "v": 1,
            "command_id": command_id,
            "ok": False,
            "key_id": key_id,
            "body": "AAAA",
            "mac": "0" * 64,
        }
    )


def test_the_real_client_is_answered_only_by_its_own_command(
    system: System, clients: dict[str, Client]
) -> None:
    jobcentre, employer = clients[KBH], clients[EMPLOYER]
    raw = system.redis.client()
    order = jobcentre.call(K.REGISTER_ORDER, {"order": order_doc()})
    placed: dict[int, str] = {}
    for n in range(ROUNDS):
        cpr = validate_cpr(f"{(n % 28) + 1:02d}0{(n // 28) + 1}901000")
        real = new_envelope(
            K.REGISTER_PLACEMENT, KBH, {"order_id": order["id"], "cpr": cpr}, key=jobcentre.key
        )
        attack = copies(real, employer)
        ahead, behind = attack[: n % 4], attack[n % 4 :]
        raw.rpush(
            reply_key("jobordre", real.command_id), forged_reply(real.command_id, str(real.key_id))
        )
        for copy in ahead:
            push(raw, copy, real.kind)
        jobcentre.send_envelope(real)
        push(raw, real.to_json(), real.kind)  # an exact replay, right behind it
        for copy in behind:
            push(raw, copy, real.kind)
        result = jobcentre.wait(real.command_id)
        # The exact replay may be answered first, from the ledger, with the CPR masked:
        # that is the foundation's own answer to this command, and a true one.
        assert result["cpr"] in (cpr, "**********"), f"round {n}: another command's reply"
        assert (result["placed_by"], result["referral"]) == (KBH, False), (
            f"round {n}: the client believed a reply that was not its command's"
        )
        placed[result["id"]] = cpr
    log = jobcentre.call(K.PLACEMENT_LOG, {"order_id": order["id"]})
    assert {p["id"]: p["cpr"] for p in log["placements"]} == placed
    assert {p["placed_by"] for p in log["placements"]} == {KBH}
    assert not any(p["referral"] for p in log["placements"]), "a tampered copy was applied"


def test_a_resend_is_not_answered_by_the_stale_reply_of_an_earlier_send(
    system: System, clients: dict[str, Client]
) -> None:
    jobcentre = clients[KBH]
    order = clients[EMPLOYER].call(K.REGISTER_ORDER, {"order": order_doc(internal_comment=None)})
    payload = {"order_id": order["id"]}
    # An earlier send of the id, refused as expired: its (authentic) refusal waits on the
    # reply list when the client resends the same command id.
    stale = new_envelope(
        K.TAKE_ORDER,
        KBH,
        payload,
        key=jobcentre.key,
        sent_at=datetime.now(UTC) - timedelta(hours=1),
    )
    jobcentre.send_envelope(stale)
    with pytest.raises(Forbidden, match="expired"):
        jobcentre.wait(stale.command_id)
    jobcentre.send_envelope(stale)  # the refusal of this one is left on the list, unread
    wait_until(
        lambda: system.redis.client().llen(reply_key("jobordre", stale.command_id)),
        20,
        "the stale refusal",
    )
    taken = jobcentre.call(K.TAKE_ORDER, payload, command_id=stale.command_id)
    assert KBH in taken["processing_by"]
