"""Write docs/protocol-vectors-v2.json: protocol 2's vectors (docs/protocol.md § 14.14).

Every vector is built from its inputs (fixed key seeds, ephemeral keys, times, opened
payloads) by the implementation in shared.canonical_v2 (the RFC 8785 library), shared.
signing_v2 and shared.sealing_v2; tests/docs/test_vectors_v2.py builds each again from its
inputs and the Node and Java clients check theirs against it. Run through scripts/schemas.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.canonical_v2 import b64url, canonical, signed_bytes
from shared.commands import CommandKind
from shared.envelope import new_envelope_v2
from shared.sealing_v2 import PAYLOAD_LABEL, REPLY_LABEL, SALT, payload_aad, reply_aad, seal_reply
from shared.signing_v2 import FoundationKey, OrganisationKey, sign


def seed(label: str) -> bytes:
    """A fixed 32-byte key for a vector: SHA-256 of its label (never a real key)."""
    return hashlib.sha256(f"jobordre v2 test vector: {label}".encode()).digest()


FOUNDATION = FoundationKey("f2-vectors-0001", seed("foundation sign"), seed("foundation seal"))
KBH = OrganisationKey(
    "jobcentre:101", "k2-kbh-0001", seed("kbh sign"), seed("kbh seal"), FOUNDATION.public
)
AARHUS = OrganisationKey(
    "jobcentre:751", "k2-aarhus-0001", seed("aarhus sign"), seed("aarhus seal"), FOUNDATION.public
)
SENT_AT = datetime(2026, 12, 7, 8, 15, 30, 250_000, tzinfo=UTC)
ORDER: dict[str, Any] = {
    "title": "Social- og sundhedsassistent til plejecenter",
    "description": "Vi søger en erfaren SOSU-assistent til dag- og aftenvagter.",
    "occupation": {"disco": "532110", "label": "Social- og sundhedsassistent"},
    "job_type": "ordinary",
    "positions": 2,
    "hours_per_week": 37,
    "employer": {"cvr": "25313763", "p_number": "1003388419"},
    "address": {
        "street": "Rådhuspladsen 1",
        "postcode": "1550",
        "city": "København V",
        "municipality": "101",
    },
    "contact": {"name": "Mette Hansen", "phone": "+45 33 66 33 66", "email": "mette@example.dk"},
    "placement_deadline": "2027-01-31",
    "max_referrals": None,
    "internal_comment": "Arbejdsgiver foretrækker ansøgere med kørekort.",
}

#: RFC 8785 cases a client's library must agree with: key order by UTF-16 code units,
#: non-ASCII unescaped, control characters escaped, numbers in ECMAScript form.
CANONICAL_CASES: list[tuple[str, Any]] = [
    ("keys sorted by UTF-16 code units", {"b": 1, "a": 2, "é": 3, "\U0001f600": 4, "\uff61": 5}),
    ("non-ASCII as itself, controls escaped", {"text": 'æøå "q" \\ / \t\n\u0001 €'}),
    ("nested, empty, null, booleans", {"z": [], "y": {}, "x": [None, True, False, {"b": 0}]}),
    ("integers", {"n": [0, -1, 37, 9007199254740991]}),
]


def organisation(key: OrganisationKey) -> dict[str, Any]:
    public = key.public
    return {
        "principal": key.principal,
        "key_id": key.key_id,
        "sign_private": b64url(key.sign_private),
        "seal_private": b64url(key.seal_private),
        "sign_public": b64url(public.sign_public),
        "seal_public": b64url(public.seal_public),
    }


def seal_steps(ephemeral: bytes, recipient: bytes, label: bytes) -> dict[str, str]:
    """The intermediate values of one seal, for an implementer to compare step by step."""
    own = X25519PrivateKey.from_private_bytes(ephemeral)
    enc = own.public_key().public_bytes_raw()
    dh = own.exchange(X25519PublicKey.from_public_bytes(recipient))
    okm = HKDF(hashes.SHA256(), 44, SALT, label + enc + recipient).derive(dh)
    return {
        "ephemeral_private": b64url(ephemeral),
        "enc": b64url(enc),
        "dh_hex": dh.hex(),
        "info_hex": (label + enc + recipient).hex(),
        "key_hex": okm[:32].hex(),
        "nonce_hex": okm[32:].hex(),
    }


def envelope_vector(
    name: str,
    key: OrganisationKey,
    kind: CommandKind,
    payload: dict[str, Any],
    command_id: str,
    caseworker: str | None = None,
) -> dict[str, Any]:
    ephemeral = seed(f"ephemeral {command_id}")
    envelope = new_envelope_v2(
        kind,
        key,
        payload,
        command_id=command_id,
        caseworker=caseworker,
        sent_at=SENT_AT,
        ephemeral=ephemeral,
    )
    wire = envelope.wire
    return {
        "name": name,
        "principal": key.principal,
        "queue": "jobordre.commands" if kind.writes else "jobordre.queries",
        "inputs": {
            "kind": kind.value,
            "command_id": command_id,
            "correlation_id": command_id,
            "sent_at": wire["sent_at"],
            "caseworker": caseworker,
            "opened_payload": payload,
        },
        "payload_plaintext": canonical(payload).decode(),
        "payload_aad": payload_aad(key.principal, command_id, kind.value).decode(),
        "payload_seal": seal_steps(ephemeral, FOUNDATION.public.seal_public, PAYLOAD_LABEL),
        "envelope": wire,
        "canonical": signed_bytes(wire).decode(),
        "signature": wire["signature"],
    }


def reply_vector(
    name: str, key: OrganisationKey, request: dict[str, Any], reply: dict[str, Any]
) -> dict[str, Any]:
    ephemeral = seed(f"reply ephemeral {name}")
    command_id, signature = request["inputs"]["command_id"], request["signature"]
    wire = seal_reply(
        reply, key.principal, signature, key.public.seal_public, FOUNDATION, ephemeral=ephemeral
    )
    opened = (
        {"ok": True, "result": reply["result"]}
        if reply["ok"]
        else {"ok": False, "error": reply["error"]}
    )
    return {
        "name": name,
        "principal": key.principal,
        "command_id": command_id,
        "request_signature": signature,
        "body_plaintext": canonical(opened).decode(),
        "body_aad": reply_aad(key.principal, command_id, signature).decode(),
        "body_seal": seal_steps(ephemeral, key.public.seal_public, REPLY_LABEL),
        "wire": wire,
        "canonical": signed_bytes(wire).decode(),
        "opened": opened,
        "valid": True,
    }


def build() -> dict[str, Any]:
    register = envelope_vector(
        "register_order, Danish letters unescaped",
        KBH,
        CommandKind.REGISTER_ORDER,
        {"order": ORDER},
        "5b0e7a4c-8f43-4c1e-9f0a-2d6b3c1e9a01",
    )
    placement = envelope_vector(
        "register_placement, cpr and note inside the sealed payload, caseworker named",
        KBH,
        CommandKind.REGISTER_PLACEMENT,
        {"order_id": 7, "cpr": "0101901234", "referral": True, "note": "Første samtale 9.30"},
        "0c9d2f6e-1a7b-4e55-8c3d-7f1e2a9b4c02",
        caseworker="mette.h",
    )
    search = envelope_vector(
        "search_orders from another organisation, a non-BMP character in the text",
        AARHUS,
        CommandKind.SEARCH_ORDERS,
        {"text": 'sosu "dag" æ€\U0001f600', "municipality": "751", "limit": 5},
        "e2a4c6b8-3d5f-4a71-b9e3-5c7d9f1a3b03",
    )
    order = {"id": 7, "title": "Tømrer", "status": "processing", "version": 3}
    ok = reply_vector(
        "ok reply to register_order",
        KBH,
        register,
        {"command_id": register["inputs"]["command_id"], "ok": True, "result": order},
    )
    refused = reply_vector(
        "validation_error reply to register_placement",
        KBH,
        placement,
        {
            "command_id": placement["inputs"]["command_id"],
            "ok": False,
            "error": {
                "code": "validation_error",
                "message": "cpr: fails the modulus-11 check",
                "field": "cpr",
            },
        },
    )
    forged = json.loads(json.dumps(ok))
    forged["name"] = "forged reply: signed by a key that is not the foundation's (drop it)"
    impostor = seed("impostor sign")
    forged["wire"]["signature"] = sign(forged["wire"], impostor)
    forged["valid"] = False
    del forged["opened"]
    stale = json.loads(json.dumps(ok))
    stale["name"] = "a reply to an earlier send of the same command id (drop it)"
    stale["request_signature"] = placement["signature"]
    stale["valid"] = False
    del stale["opened"]
    return {
        "about": "Test vectors of protocol 2 (docs/protocol.md § 14). Binary values are "
        "base64url without padding; canonical forms are RFC 8785 (UTF-8). Keys are SHA-256 "
        "of labels, never real. Generated by scripts/schemas (scripts/protocol_vectors_v2.py).",
        "hkdf": {
            "salt_hex": SALT.hex(),
            "payload_label": PAYLOAD_LABEL.decode(),
            "reply_label": REPLY_LABEL.decode(),
            "length": 44,
        },
        "foundation": {
            **FOUNDATION.public.to_dict(),
            "sign_private": b64url(FOUNDATION.sign_private),
            "seal_private": b64url(FOUNDATION.seal_private),
        },
        "organisations": [organisation(KBH), organisation(AARHUS)],
        "canonical": [
            {"name": name, "value": value, "canonical": canonical(value).decode()}
            for name, value in CANONICAL_CASES
        ],
        "envelopes": [register, placement, search],
        "replies": [ok, refused, forged, stale],
    }


def main() -> None:
    target = Path(sys.argv[1])
    target.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"scripts/schemas: wrote {target}")


if __name__ == "__main__":
    main()
