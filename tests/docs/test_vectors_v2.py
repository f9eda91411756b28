"""docs/protocol-vectors-v2.json is built from its inputs: each vector is made again here
from its inputs alone (keys, ephemeral keys, times, opened payloads) with the RFC 8785
library and the cryptography package, and must come out byte for byte; every envelope
opens and verifies as a worker would, every valid reply opens for its client, every
invalid one is dropped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.canonical_v2 import b64url, unb64url
from shared.commands import CommandKind
from shared.envelope import decode_envelope, new_envelope_v2
from shared.sealing_v2 import open_payload, open_reply, seal_reply
from shared.signing_v2 import FoundationKey, FoundationPublic, OrganisationKey

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "docs" / "protocol-vectors-v2.json").read_text("utf-8"))
FOUNDATION_DATA = VECTORS["foundation"]
FOUNDATION = FoundationKey(
    FOUNDATION_DATA["key_id"],
    unb64url(FOUNDATION_DATA["sign_private"], "sign_private", 32),
    unb64url(FOUNDATION_DATA["seal_private"], "seal_private", 32),
)


def organisation(principal: str) -> OrganisationKey:
    data = next(o for o in VECTORS["organisations"] if o["principal"] == principal)
    return OrganisationKey(
        principal,
        data["key_id"],
        unb64url(data["sign_private"], "sign_private", 32),
        unb64url(data["seal_private"], "seal_private", 32),
        FoundationPublic.from_dict(FOUNDATION_DATA),
    )


def cases(section: str) -> list[Any]:
    return [pytest.param(v, id=v["name"]) for v in VECTORS[section]]


def test_the_file_is_what_the_generator_writes(tmp_path: Path) -> None:
    written = tmp_path / "vectors.json"
    subprocess.run(
        [sys.executable, "scripts/protocol_vectors_v2.py", str(written)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert written.read_text("utf-8") == (ROOT / "docs" / "protocol-vectors-v2.json").read_text(
        "utf-8"
    ), "docs/protocol-vectors-v2.json drifted: run scripts/schemas and commit"


def test_the_public_keys_are_those_of_the_private_ones() -> None:
    assert FOUNDATION.public == FoundationPublic.from_dict(FOUNDATION_DATA)
    for data in VECTORS["organisations"]:
        public = organisation(data["principal"]).public
        assert b64url(public.sign_public) == data["sign_public"]
        assert b64url(public.seal_public) == data["seal_public"]


@pytest.mark.parametrize("vector", cases("canonical"))
def test_canonical_cases_are_the_rfc8785_librarys(vector: dict[str, Any]) -> None:
    assert rfc8785.dumps(vector["value"]).decode() == vector["canonical"]


def _seal_steps(steps: dict[str, str], recipient: bytes, label: str) -> tuple[bytes, bytes]:
    own = X25519PrivateKey.from_private_bytes(unb64url(steps["ephemeral_private"], "e", 32))
    enc = own.public_key().public_bytes_raw()
    assert b64url(enc) == steps["enc"]
    dh = own.exchange(X25519PublicKey.from_public_bytes(recipient))
    info = label.encode() + enc + recipient
    okm = HKDF(hashes.SHA256(), 44, bytes(32), info).derive(dh)
    assert (dh.hex(), info.hex()) == (steps["dh_hex"], steps["info_hex"])
    assert (okm[:32].hex(), okm[32:].hex()) == (steps["key_hex"], steps["nonce_hex"])
    return okm[:32], okm[32:]


@pytest.mark.parametrize("vector", cases("envelopes"))
def test_an_envelope_is_built_from_its_inputs(vector: dict[str, Any]) -> None:
    key = organisation(vector["principal"])
    inputs = vector["inputs"]
    wire = vector["envelope"]
    # The seal, step by step, with nothing of jobordre's code.
    aes_key, nonce = _seal_steps(
        vector["payload_seal"], FOUNDATION.public.seal_public, VECTORS["hkdf"]["payload_label"]
    )
    plaintext = rfc8785.dumps(inputs["opened_payload"])
    assert plaintext.decode() == vector["payload_plaintext"]
    ct = AESGCM(aes_key).encrypt(nonce, plaintext, vector["payload_aad"].encode())
    assert wire["payload"] == {"sealed": {"enc": vector["payload_seal"]["enc"], "ct": b64url(ct)}}
    # The canonical bytes and the signature.
    signed = rfc8785.dumps({k: v for k, v in wire.items() if k != "signature"})
    assert signed.decode() == vector["canonical"]
    Ed25519PublicKey.from_public_bytes(key.public.sign_public).verify(
        unb64url(wire["signature"], "signature", 64), signed
    )
    # The implementation makes the same envelope from the same inputs.
    made = new_envelope_v2(
        CommandKind(inputs["kind"]),
        key,
        inputs["opened_payload"],
        command_id=inputs["command_id"],
        correlation_id=inputs["correlation_id"],
        caseworker=inputs["caseworker"],
        sent_at=decode_envelope(wire).sent_at,
        ephemeral=unb64url(vector["payload_seal"]["ephemeral_private"], "e", 32),
    )
    assert made.wire == wire


@pytest.mark.parametrize("vector", cases("envelopes"))
def test_an_envelope_opens_for_the_foundation(vector: dict[str, Any]) -> None:
    envelope = decode_envelope(json.dumps(vector["envelope"]))
    opened = open_payload(
        envelope.payload, envelope.principal, envelope.command_id, envelope.kind.value, FOUNDATION
    )
    assert opened == vector["inputs"]["opened_payload"]


@pytest.mark.parametrize("vector", [v for v in cases("replies") if v.values[0]["valid"]])
def test_a_reply_is_built_from_its_inputs_and_opens_for_its_client(vector: dict[str, Any]) -> None:
    key = organisation(vector["principal"])
    steps = vector["body_seal"]
    _seal_steps(steps, key.public.seal_public, VECTORS["hkdf"]["reply_label"])
    assert rfc8785.dumps(vector["opened"]).decode() == vector["body_plaintext"]
    opened = vector["opened"]
    reply = {"command_id": vector["command_id"], **opened}
    made = seal_reply(
        reply,
        key.principal,
        vector["request_signature"],
        key.public.seal_public,
        FOUNDATION,
        ephemeral=unb64url(steps["ephemeral_private"], "e", 32),
    )
    assert made == vector["wire"]
    signed = rfc8785.dumps({k: v for k, v in made.items() if k != "signature"})
    assert signed.decode() == vector["canonical"]
    accepted = open_reply(made, key, vector["command_id"], vector["request_signature"])
    assert accepted == {"command_id": vector["command_id"], **opened}


@pytest.mark.parametrize("vector", [v for v in cases("replies") if not v.values[0]["valid"]])
def test_an_invalid_reply_is_dropped(vector: dict[str, Any]) -> None:
    key = organisation(vector["principal"])
    assert (
        open_reply(vector["wire"], key, vector["command_id"], vector["request_signature"]) is None
    )


def test_command_ids_are_uuids_and_no_text_holds_invisible_characters() -> None:
    import uuid

    for vector in VECTORS["envelopes"]:
        assert str(uuid.UUID(vector["inputs"]["command_id"])) == vector["inputs"]["command_id"]
        text = json.dumps(vector["inputs"], ensure_ascii=False)
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)
