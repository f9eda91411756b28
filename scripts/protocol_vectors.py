"""Write docs/protocol-vectors.json: signing, sealing and reply vectors (docs/protocol.md).

Every value is computed by the Python implementation (shared.signing, shared.sealing,
shared.envelope) from fixed keys, times and nonces, so a client in another language can
check its own implementation byte for byte. Run through ``scripts/schemas``.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from shared import sealing
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.signing import SigningKey, canonical

#: Two organisations' keys; the secret is a string, its UTF-8 bytes are the HMAC key.
KBH = SigningKey("jobcentre:101", "a1b2c3d4e5f6", "tH1s-is-a-t3st-s3cret_NOT-for-production-u5e=")
AARHUS = SigningKey("jobcentre:751", "0f0e0d0c0b0a", "næste-nøgle-æøå")
SENT_AT = datetime(2026, 12, 2, 8, 15, 30, tzinfo=UTC)
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


#: JSON numbers as JavaScript's JSON.stringify writes them, the worker reads and re-writes.
NUMBERS = (
    "37",
    "37.5",
    "0.1",
    "-2.5",
    "1e+21",
    "1.5e+300",
    "1e-7",
    "0.00001",
    "0.0001",
    "123456789012345680000",
    "1234567890123456.8",
    "-0",
    "5e-324",
)


@contextmanager
def fixed_nonces(*nonces: bytes) -> Iterator[None]:
    """Make sealing use these nonces, in order, instead of random ones."""
    queue = list(nonces)
    real = sealing.os
    sealing.os = SimpleNamespace(urandom=lambda n: queue.pop(0))  # type: ignore[assignment]
    try:
        yield
    finally:
        sealing.os = real
    assert not queue, "a nonce was not used"


def key_fields(key: SigningKey) -> dict[str, str]:
    return {
        "principal": key.principal,
        "key_id": key.key_id,
        "secret": key.secret,
        "key_hex": key.secret.encode().hex(),
    }


def signing_vector(
    name: str,
    key: SigningKey,
    kind: CommandKind,
    payload: dict[str, Any],
    nonces: tuple[bytes, ...] = (),
    **fields: Any,
) -> dict[str, Any]:
    with fixed_nonces(*nonces):
        envelope = new_envelope(
            kind, key.principal, payload, key=key, sent_at=fields.pop("sent_at", SENT_AT), **fields
        )
    document = envelope.model_dump(mode="json")
    return {
        "name": name,
        **key_fields(key),
        "queue": "jobordre.commands" if kind.writes else "jobordre.queries",
        "plain_payload": payload,
        "nonces_hex": [nonce.hex() for nonce in nonces],
        "envelope": document,
        "canonical": canonical(document).decode(),
        "signature": envelope.signature,
    }


def sealing_vector(
    name: str, key: SigningKey, command_id: str, field: str, value: Any, nonce: bytes
) -> dict[str, Any]:
    with fixed_nonces(nonce):
        sealed = sealing.seal_payload({field: value}, command_id, key)[field]
    return {
        "name": name,
        **key_fields(key),
        "info": "jobordre payload seal v1",
        "derived_key_hex": sealing.derive(key, b"jobordre payload seal v1").hex(),
        "command_id": command_id,
        "field": field,
        "aad": f"{command_id}/{field}",
        "value": value,
        "plaintext": json.dumps(value),
        "nonce_hex": nonce.hex(),
        "sealed": sealed,
        "ciphertext_and_tag_hex": base64.b64decode(sealed["sealed"])[12:].hex(),
    }


def reply_vector(
    name: str, key: SigningKey, request_signature: str, reply: dict[str, Any], nonce: bytes
) -> dict[str, Any]:
    with fixed_nonces(nonce):
        wire = sealing.seal_reply(reply, key, request_signature)
    inner = {"result": reply["result"]} if reply["ok"] else {"error": reply["error"]}
    outcome = "ok" if reply["ok"] else "error"
    return {
        "name": name,
        **key_fields(key),
        "seal_key_hex": sealing.derive(key, b"jobordre reply seal v1").hex(),
        "mac_key_hex": sealing.derive(key, b"jobordre reply mac v1").hex(),
        "command_id": reply["command_id"],
        "request_signature": request_signature,
        "body_plaintext": json.dumps(inner),
        "nonce_hex": nonce.hex(),
        "mac_input": f"jobordre-reply-v1\n{reply['command_id']}\n{request_signature}\n"
        f"{outcome}\n{wire['body']}",
        "wire": wire,
        "opened": {"command_id": reply["command_id"], "ok": reply["ok"], **inner},
    }


def build() -> dict[str, Any]:
    nonce = bytes(range(12))
    register = signing_vector(
        "register_order, ASCII-escaped Danish letters",
        KBH,
        CommandKind.REGISTER_ORDER,
        {"order": ORDER},
        command_id="cmd-0001-register",
        correlation_id="corr-0001",
    )
    placement = signing_vector(
        "register_placement, cpr and note sealed (fixed nonces), caseworker named",
        KBH,
        CommandKind.REGISTER_PLACEMENT,
        {"order_id": 7, "cpr": "0101901234", "referral": True, "note": "Første samtale 9.30"},
        nonces=(bytes(range(12)), bytes(range(12, 24))),
        command_id="cmd-0002-place",
        correlation_id="corr-0002",
        caseworker="mette.h",
    )
    search = signing_vector(
        "search_orders, non-BMP character, a tab and (last, invisible) U+007F DEL in the text",
        AARHUS,
        CommandKind.SEARCH_ORDERS,
        {"text": 'sosu "dag"\t\u00e6\u20ac\U0001f600\u007f', "municipality": "751", "limit": 5},
        command_id="cmd-0003-search",
        correlation_id="corr-0003",
    )
    fraction = signing_vector(
        "get_order, sent_at with a fraction of a second (written with 6 digits)",
        KBH,
        CommandKind.GET_ORDER,
        {"order_id": 42},
        command_id="cmd-0004-get",
        correlation_id="corr-0004",
        sent_at=datetime(2026, 12, 2, 8, 15, 30, 250000, tzinfo=UTC),
    )
    order_reply = {
        "command_id": "cmd-0004-get",
        "ok": True,
        "result": {"id": 42, "title": "Tømrer", "status": "processing", "version": 3},
    }
    error_reply = {
        "command_id": "cmd-0002-place",
        "ok": False,
        "error": {
            "code": "not_found",
            "message": "job order 7 does not exist",
            "field": "order_id",
        },
    }
    replies = [
        reply_vector("ok reply to get_order", KBH, str(fraction["signature"]), order_reply, nonce),
        reply_vector(
            "error reply to register_placement",
            KBH,
            str(placement["signature"]),
            error_reply,
            bytes(range(100, 112)),
        ),
    ]
    forged = json.loads(json.dumps(replies[0]))
    forged["name"] = "forged reply: body replaced, MAC copied (a client must drop it)"
    other = reply_vector("", AARHUS, str(fraction["signature"]), order_reply, nonce)
    forged["wire"]["body"] = other["wire"]["body"]
    forged["valid"] = False
    del forged["opened"], forged["mac_input"]
    for vector in replies:
        vector["valid"] = True
    return {
        "about": "Test vectors of the jobordre queue protocol (docs/protocol.md). key_hex is "
        "the hex of the UTF-8 bytes of the secret string; signature is the lowercase hex "
        "HMAC-SHA256 of the UTF-8 canonical under that key. A reply's opened is what a "
        "client's reply check returns: the opened body plus command_id and ok from the wire. "
        "Generated by scripts/schemas.",
        "vectors": [register, placement, search, fraction],
        "sealing": [
            sealing_vector("sealed cpr", KBH, "cmd-0002-place", "cpr", "0101901234", nonce),
            sealing_vector(
                "sealed note, Danish letters",
                KBH,
                "cmd-0002-place",
                "note",
                "Første samtale 9.30",
                bytes(range(12, 24)),
            ),
        ],
        "replies": [*replies, forged],
        # [what a client writes, how the worker's canonical form writes it back]
        "numbers": [[text, canonical({"n": json.loads(text)}).decode()[5:-1]] for text in NUMBERS],
    }


def main() -> None:
    target = Path(sys.argv[1])
    target.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"scripts/schemas: wrote {target}")


if __name__ == "__main__":
    main()
