"""docs/protocol-vectors.json holds for the Python implementation: what a client in another
language checks itself against is what the workers really compute."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shared import sealing
from shared.envelope import decode_envelope
from shared.signing import SigningKey, canonical, signature, verify

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "protocol-vectors.json").read_text("utf-8")
)


def key_of(vector: dict[str, Any]) -> SigningKey:
    assert bytes.fromhex(vector["key_hex"]) == vector["secret"].encode()
    return SigningKey(vector["principal"], vector["key_id"], vector["secret"])


def cases(section: str) -> list[Any]:
    return [pytest.param(v, id=v["name"]) for v in VECTORS[section]]


@pytest.fixture
def fixed_nonces(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(*nonces_hex: str) -> None:
        queue = [bytes.fromhex(n) for n in nonces_hex]
        monkeypatch.setattr(sealing, "os", SimpleNamespace(urandom=lambda n: queue.pop(0)))

    return use


@pytest.mark.parametrize("vector", cases("vectors"))
def test_the_canonical_form_is_what_the_worker_signs(vector: dict[str, Any]) -> None:
    # What the worker verifies: the envelope as decoded from the queue, dumped again.
    decoded = decode_envelope(json.dumps(vector["envelope"])).model_dump(mode="json")
    assert canonical(decoded).decode() == vector["canonical"]
    assert canonical(decoded) == vector["canonical"].encode("ascii")


@pytest.mark.parametrize("vector", cases("vectors"))
def test_the_signature_is_hmac_sha256_of_the_canonical_bytes(vector: dict[str, Any]) -> None:
    mac = hmac.new(bytes.fromhex(vector["key_hex"]), vector["canonical"].encode(), hashlib.sha256)
    assert mac.hexdigest() == vector["signature"] == vector["envelope"]["signature"]
    key = key_of(vector)
    assert signature(vector["envelope"], key) == vector["signature"]
    assert verify(vector["envelope"], {key.key_id: key}) == key


@pytest.mark.parametrize("vector", cases("vectors"))
def test_one_changed_byte_breaks_the_signature(vector: dict[str, Any]) -> None:
    key = key_of(vector)
    altered = {**vector["envelope"], "correlation_id": vector["envelope"]["correlation_id"] + "x"}
    assert signature(altered, key) != vector["signature"]


@pytest.mark.parametrize("vector", cases("vectors"))
def test_the_sealed_payload_opens_to_the_plain_one(vector: dict[str, Any]) -> None:
    envelope = vector["envelope"]
    opened = sealing.open_payload(envelope["payload"], envelope["command_id"], key_of(vector))
    assert opened == vector["plain_payload"]


@pytest.mark.parametrize("vector", cases("sealing"))
def test_sealing_with_the_vector_nonce_gives_the_vector_bytes(
    vector: dict[str, Any], fixed_nonces: Any
) -> None:
    key = key_of(vector)
    assert sealing.derive(key, vector["info"].encode()).hex() == vector["derived_key_hex"]
    fixed_nonces(vector["nonce_hex"])
    sealed = sealing.seal_payload({vector["field"]: vector["value"]}, vector["command_id"], key)
    assert sealed[vector["field"]] == vector["sealed"]
    blob = base64.b64decode(vector["sealed"]["sealed"])
    assert blob[:12].hex() == vector["nonce_hex"]
    assert blob[12:].hex() == vector["ciphertext_and_tag_hex"]


@pytest.mark.parametrize("vector", cases("sealing"))
def test_a_sealed_field_opens_only_under_its_own_command_id(vector: dict[str, Any]) -> None:
    key, payload = key_of(vector), {vector["field"]: vector["sealed"]}
    opened = sealing.open_payload(payload, vector["command_id"], key)
    assert opened[vector["field"]] == vector["value"]
    with pytest.raises(sealing.NotAuthenticated):
        sealing.open_payload(payload, vector["command_id"] + "-other", key)


@pytest.mark.parametrize("vector", [c for c in cases("replies") if c.values[0]["valid"]])
def test_a_reply_seals_and_macs_to_the_vector(vector: dict[str, Any], fixed_nonces: Any) -> None:
    key = key_of(vector)
    fixed_nonces(vector["nonce_hex"])
    opened = vector["opened"]
    assert sealing.seal_reply(opened, key, vector["request_signature"]) == vector["wire"]
    mac = hmac.new(bytes.fromhex(vector["mac_key_hex"]), vector["mac_input"].encode(), "sha256")
    assert mac.hexdigest() == vector["wire"]["mac"]


@pytest.mark.parametrize("vector", cases("replies"))
def test_a_client_believes_a_reply_only_when_the_vector_says_it_is_valid(
    vector: dict[str, Any],
) -> None:
    opened = sealing.open_reply(
        vector["wire"], key_of(vector), vector["command_id"], vector["request_signature"]
    )
    assert opened == (vector["opened"] if vector["valid"] else None)


def test_the_vectors_cover_a_forgery_and_every_section() -> None:
    assert [v for v in VECTORS["replies"] if not v["valid"]]
    assert VECTORS["vectors"] and VECTORS["sealing"]
