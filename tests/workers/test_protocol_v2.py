"""Protocol 2 against real workers (docs/protocol.md § 14): a version 2 client registers,
places a person with a sealed CPR and reads back, beside a version 1 client on the same
worker; a command whose signature verifies but whose form is refused is told why, on its
principal's own reply list; a forgery gets nothing; a resend shows the one masking form.

Real redis-server, real worker processes, keys made with ``jobordre keys create
--protocol 2``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis

from shared.commands import CommandKind
from shared.envelope import new_envelope_v2
from shared.errors import Forbidden
from shared.sealing_v2 import open_reply
from shared.signing_v2 import FoundationKey, OrganisationKey, sign
from tests.conftest import System
from tests.factories import order_doc
from workers.client import Client
from workers.client.credentials import read_key_file
from workers.client.replies import wait_reply
from workers.transport.broker import queue_for
from workers.transport.outbound import reply_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

K = CommandKind
KBH, AARHUS = "jobcentre:101", "jobcentre:751"
CPR = "0101901234"
#: How long a test waits to be sure nothing was answered, in milliseconds.
SILENCE_MS = 3_000


def v2_key(system: System, principal: str, tmp_path: Path) -> OrganisationKey:
    """A protocol 2 key made by the operator's command, its private file the test's."""
    path = tmp_path / f"{principal.replace(':', '_')}.v2.key"
    made = system.json("keys", "create", principal, "--protocol", "2", "--out", str(path))
    assert made["protocol"] == 2
    assert path.stat().st_mode & 0o777 == 0o600, "the private key file is its owner's only"
    key = read_key_file(path)
    assert isinstance(key, OrganisationKey)
    return key


@pytest.fixture(scope="module")
def worker(system: System) -> System:
    """The module's store with one worker process running (the ``system`` fixture's)."""
    return system


@pytest.fixture
def kbh(worker: System, tmp_path: Path) -> Iterator[Client]:
    client = Client(worker.settings(), KBH, key=v2_key(worker, KBH, tmp_path))
    yield client
    client.close()


def push(client: redis.Redis, wire: dict[str, Any]) -> None:
    """Put an envelope on its kind's queue by hand, as any integrator's client does."""
    kind = K(wire["kind"]) if wire.get("kind") in set(K) else K.GET_ORDER
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_for(kind),
        actor_name=kind.value,
        args=(json.dumps(wire),),
        kwargs={},
        options={},
    )
    client.hset(f"dramatiq:{message.queue_name}.msgs", message.message_id, message.encode())
    client.rpush(f"dramatiq:{message.queue_name}", message.message_id)


def resigned(key: OrganisationKey, wire: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``wire`` changed and signed again by ``key``: authentic, whatever its form."""
    changed = {**{k: v for k, v in wire.items() if k != "signature"}, **changes}
    changed["signature"] = sign(changed, key.sign_private)
    return changed


def wait_v2(
    worker: System, key: OrganisationKey, wire: dict[str, Any], timeout_ms: int
) -> dict[str, Any] | None:
    """The authentic reply to ``wire`` on its principal's list, or None in time."""
    client = redis.Redis.from_url(worker.redis.url)
    try:
        return wait_reply(
            client,
            "jobordre",
            wire["command_id"],
            timeout_ms,
            lambda reply: open_reply(reply, key, wire["command_id"], wire["signature"]),
            principal=key.principal,
        )
    finally:
        client.close()


def test_a_version_2_client_registers_places_and_reads_beside_a_version_1_client(
    worker: System, kbh: Client
) -> None:
    order = kbh.call(K.REGISTER_ORDER, {"order": order_doc()})
    assert order["status"] == "processing"
    placement = kbh.call(K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR, "note": "ok"})
    assert placement["cpr"] == CPR, "the placing jobcentre sees the CPR it sealed"
    version_1 = Client(worker.settings(), AARHUS)
    try:
        assert version_1.call(K.GET_ORDER, {"order_id": order["id"]})["id"] == order["id"]
    finally:
        version_1.close()
    log = kbh.call(K.PLACEMENT_LOG, {"order_id": order["id"]})
    assert log["placements"][0]["cpr"] == CPR


def test_nothing_of_a_version_2_payload_or_reply_is_in_clear_on_redis(
    worker: System, kbh: Client
) -> None:
    order = kbh.call(K.REGISTER_ORDER, {"order": order_doc()})
    envelope = kbh.envelope(K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR})
    assert CPR not in envelope.to_json() and '"order_id"' not in envelope.to_json()
    kbh.send_envelope(envelope)
    broker = redis.Redis.from_url(worker.redis.url)
    try:
        key = reply_key("jobordre", envelope.command_id, KBH)
        deadline = time.monotonic() + 20
        while not broker.exists(key) and time.monotonic() < deadline:
            time.sleep(0.02)
        raw = broker.lindex(key, 0)
        assert raw is not None, f"the reply is on {key}"
        assert CPR.encode() not in raw and b'"result"' not in raw
    finally:
        broker.close()
    assert kbh.wait(envelope.command_id)["cpr"] == CPR


def test_a_resent_placement_shows_the_one_masking_form(worker: System, kbh: Client) -> None:
    order = kbh.call(K.REGISTER_ORDER, {"order": order_doc()})
    command_id = str(uuid.uuid4())
    first = kbh.call(
        K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR}, command_id=command_id
    )
    again = kbh.call(
        K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR}, command_id=command_id
    )
    assert (first["cpr"], first["masked"]) == (CPR, False)
    assert (again["cpr"], again["masked"]) == (None, True), "a stored reply keeps no CPR"
    assert again["id"] == first["id"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"principal": "jobcentre: 101"}, "principal", id="principal-not-normal"),
        pytest.param({"sent_at": "now+00:00"}, "sent_at", id="sent-at-with-offset"),
        pytest.param({"surplus": 1}, "surplus", id="unknown-member"),
        pytest.param({"payload": {"order_id": 1}}, "payload", id="payload-in-clear"),
    ],
)
def test_an_authentic_command_refused_for_its_form_is_told_which_field(
    worker: System, kbh: Client, changes: dict[str, Any], field: str
) -> None:
    assert isinstance(kbh.key, OrganisationKey)
    if changes.get("sent_at") == "now+00:00":
        changes = {"sent_at": datetime.now(UTC).isoformat()}
    wire = resigned(kbh.key, kbh.envelope(K.GET_ORDER, {"order_id": 1}).wire, **changes)
    push(redis.Redis.from_url(worker.redis.url), wire)
    reply = wait_v2(worker, kbh.key, wire, 20_000)
    assert reply is not None, "an authentic command is answered"
    assert reply["ok"] is False
    assert reply["error"]["code"] == "validation_error"
    assert reply["error"]["field"] == field


def test_a_forgery_gets_no_reply(worker: System, kbh: Client) -> None:
    assert isinstance(kbh.key, OrganisationKey)
    impostor = OrganisationKey.generate(KBH, kbh.key.foundation)
    real = kbh.envelope(K.GET_ORDER, {"order_id": 1}).wire
    forged = {**real, "signature": sign(real, impostor.sign_private)}
    malformed = resigned(impostor, real, sent_at=datetime.now(UTC).isoformat())
    for wire in (forged, malformed):
        push(redis.Redis.from_url(worker.redis.url), wire)
    # Waiting as the real key would accept only the foundation's reply; none may come.
    assert wait_v2(worker, kbh.key, forged, SILENCE_MS) is None
    assert wait_v2(worker, kbh.key, malformed, 1) is None
    broker = redis.Redis.from_url(worker.redis.url)
    assert not broker.exists(reply_key("jobordre", real["command_id"], KBH))


def test_a_payload_sealed_to_another_foundation_key_is_refused_naming_the_payload(
    worker: System, kbh: Client
) -> None:
    assert isinstance(kbh.key, OrganisationKey)
    wrong = OrganisationKey(
        KBH,
        kbh.key.key_id,
        kbh.key.sign_private,
        kbh.key.seal_private,
        FoundationKey.generate().public,
    )
    wire = new_envelope_v2(K.GET_ORDER, wrong, {"order_id": 1}).wire
    push(redis.Redis.from_url(worker.redis.url), wire)
    reply = wait_v2(worker, kbh.key, wire, 20_000)
    assert reply is not None and reply["error"]["field"] == "payload.sealed"


def test_another_organisation_reusing_a_command_id_answers_on_its_own_list(
    worker: System, kbh: Client, tmp_path: Path
) -> None:
    aarhus = Client(worker.settings(), AARHUS, key=v2_key(worker, AARHUS, tmp_path))
    try:
        order = kbh.call(K.REGISTER_ORDER, {"order": order_doc()})
        command_id = str(uuid.uuid4())
        theirs = aarhus.send(K.GET_ORDER, {"order_id": order["id"]}, command_id=command_id)
        mine = kbh.call(K.GET_ORDER, {"order_id": order["id"]}, command_id=command_id)
        assert mine["id"] == order["id"]
        assert aarhus.wait(theirs)["id"] == order["id"], "each got its own reply"
    finally:
        aarhus.close()


def test_a_version_2_key_file_holds_the_private_keys_and_the_store_only_public_ones(
    worker: System, tmp_path: Path
) -> None:
    key = v2_key(worker, "akasse:3f", tmp_path)
    rows = worker.sql(
        "SELECT sign_public, seal_public FROM public_keys WHERE key_id = ?", (key.key_id,)
    )
    assert len(rows) == 1
    text = json.dumps([list(row) for row in rows])
    from shared.canonical_v2 import b64url

    assert b64url(key.sign_private) not in text and b64url(key.seal_private) not in text
    assert (
        worker.sql("SELECT count(*) FROM signing_keys WHERE key_id = ?", (key.key_id,))[0][0] == 0
    )
    listed = worker.json("keys", "list", "akasse:3f")["keys"]
    assert [k["protocol"] for k in listed] == [2]


def test_a_revoked_version_2_key_is_refused(worker: System, tmp_path: Path) -> None:
    key = v2_key(worker, "akasse:revoked", tmp_path)
    worker.json("keys", "revoke", "akasse:revoked", "--key-id", key.key_id)
    client = Client(worker.settings(reply_timeout_ms=SILENCE_MS), "akasse:revoked", key=key)
    try:
        with pytest.raises(Forbidden, match="revoked"):
            client.call(K.GET_ORDER, {"order_id": 1})
    finally:
        client.close()


def test_an_access_log_row_of_a_version_2_command_is_proven_by_its_signed_command(
    worker: System, kbh: Client
) -> None:
    person = "0102031239"
    order = kbh.call(K.REGISTER_ORDER, {"order": order_doc()})
    envelope = kbh.envelope(K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": person})
    kbh.wait(kbh.send_envelope(envelope))
    version_1 = Client(worker.settings(), KBH)
    try:
        version_1.call(K.PLACEMENT_LOG, {"order_id": order["id"]})
    finally:
        version_1.close()
    exported = worker.json("audit", "proof", person)
    rows = {row["command_id"]: row for row in exported["entries"]}
    proven = rows[envelope.command_id]
    assert proven["action"] == "register" and proven["organisation"] == KBH
    proof = proven["proof"]
    assert proof["verified"] is True
    assert proof["envelope"] == envelope.wire, "the envelope exactly as it was signed"
    assert proof["key"]["key_id"] == envelope.key_id and proof["key"]["principal"] == KBH
    assert person not in json.dumps(proof), "the proof keeps the payload sealed"
    unproven = [row for row in exported["entries"] if row["command_id"] != envelope.command_id]
    assert unproven and all(row["proof"] is None for row in unproven), "a v1 read has no proof"
