"""What a command's authentication costs a worker in protocol 2 against protocol 1.

Measured in process on one core, per command, for a placement (the kind with sealed
personal data) and a job order registration (the largest payload): the canonical form
and the signature check (protocol 1: ``json.dumps`` and HMAC-SHA256; protocol 2: RFC 8785
and Ed25519), and the same plus opening what is sealed (protocol 1: ``cpr`` and ``note``,
AES-GCM under cached HKDF keys; protocol 2: the whole payload, X25519 + HKDF + AES-GCM).
Also the primitives alone: HMAC-SHA256 against Ed25519 verify over the same command's
signed bytes, and each canonical form. Reported as ratios of protocol 2 to protocol 1
from the same run, with the absolute microseconds for context.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared import sealing, sealing_v2, signing
from shared.canonical_v2 import signed_bytes, unb64url
from shared.commands import CommandKind
from shared.envelope import new_envelope, new_envelope_v2
from shared.signing import SigningKey
from shared.signing_v2 import FoundationKey, OrganisationKey, verifies
from workers.bench.generator import Generator

KBH = "jobcentre:101"


def _per_call_us(work: Callable[[], Any], iterations: int) -> float:
    """Microseconds per call: the best of three timed rounds (the least disturbed)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(iterations):
            work()
        best = min(best, time.perf_counter() - started)
    return round(best / iterations * 1e6, 1)


def _measure(
    kind: CommandKind,
    payload: dict[str, Any],
    v1: SigningKey,
    v2: OrganisationKey,
    foundation: FoundationKey,
    iterations: int,
) -> dict[str, Any]:
    """One command kind's figures (see the module docstring)."""
    one = new_envelope(kind, KBH, payload, key=v1)
    wire = new_envelope_v2(kind, v2, payload).wire
    fields = one.model_dump(mode="json")
    keys_v1 = {v1.key_id: v1}
    public = v2.public.sign_public
    signed_v1, signed_v2 = signing.canonical(fields), signed_bytes(wire)
    raw_signature = unb64url(wire["signature"], "signature", 64)
    checker = Ed25519PublicKey.from_public_bytes(public)

    def hmac_only() -> None:
        hmac.new(v1.secret.encode(), signed_v1, hashlib.sha256).digest()

    def ed25519_only() -> None:
        checker.verify(raw_signature, signed_v2)

    def verify_v1() -> None:
        signing.verify(fields, keys_v1)

    def verify_v2() -> None:
        assert verifies(wire, public)

    def open_v1() -> None:
        signing.verify(fields, keys_v1)
        sealing.open_payload(fields["payload"], one.command_id, v1)

    def open_v2() -> None:
        assert verifies(wire, public)
        sealing_v2.open_payload(
            wire["payload"], wire["principal"], wire["command_id"], wire["kind"], foundation
        )

    us = {
        "hmac_us": _per_call_us(hmac_only, iterations),
        "ed25519_us": _per_call_us(ed25519_only, iterations),
        "canonical_v1_us": _per_call_us(lambda: signing.canonical(fields), iterations),
        "canonical_v2_us": _per_call_us(lambda: signed_bytes(wire), iterations),
        "verify_v1_us": _per_call_us(verify_v1, iterations),
        "verify_v2_us": _per_call_us(verify_v2, iterations),
        "verify_open_v1_us": _per_call_us(open_v1, iterations),
        "verify_open_v2_us": _per_call_us(open_v2, iterations),
    }
    return {
        **us,
        "ed25519_over_hmac": round(us["ed25519_us"] / us["hmac_us"], 1),
        "verify_ratio": round(us["verify_v2_us"] / us["verify_v1_us"], 1),
        "verify_open_ratio": round(us["verify_open_v2_us"] / us["verify_open_v1_us"], 1),
    }


def measure_signatures(iterations: int = 300) -> dict[str, Any]:
    """Per-command authentication cost of protocol 2 against protocol 1, by kind."""
    v1 = SigningKey.generate(KBH)
    foundation = FoundationKey.generate()
    v2 = OrganisationKey.generate(KBH, foundation.public)
    placement = {"order_id": 7, "cpr": "0101901234", "note": "Første samtale"}
    return {
        "placement": _measure(
            CommandKind.REGISTER_PLACEMENT, placement, v1, v2, foundation, iterations
        ),
        "order": _measure(
            CommandKind.REGISTER_ORDER,
            {"order": Generator(seed=1).order()},
            v1,
            v2,
            foundation,
            iterations,
        ),
    }
