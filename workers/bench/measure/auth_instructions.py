"""Count what authenticating a command costs, for ``valgrind --tool=callgrind``.

``python -m workers.bench.measure.auth_instructions MODE`` builds 200 placement commands of
each protocol, then does one of: ``setup`` (nothing more: subtract its count), ``hmac``
(HMAC-SHA256 of each version 1 canonical form, made in the setup), ``ed25519`` (RFC 8785
form and Ed25519 verify of each version 2 envelope), ``v1`` (protocol 1's signature check
and opening), ``v2`` (protocol 2's). Instruction counts are the same from run to run
whatever else the machine does; docs/performance.md has the figures.
"""

from __future__ import annotations

import hashlib
import hmac
import sys

from shared import sealing, sealing_v2, signing
from shared.commands import CommandKind
from shared.envelope import new_envelope, new_envelope_v2
from shared.signing import SigningKey
from shared.signing_v2 import FoundationKey, OrganisationKey, verifies

KBH = "jobcentre:101"
COMMANDS = 200


def main(mode: str) -> None:
    v1 = SigningKey.generate(KBH)
    foundation = FoundationKey.generate()
    v2 = OrganisationKey.generate(KBH, foundation.public)
    payload = {"order_id": 7, "cpr": "0101901234", "note": "Første samtale"}
    ones = [
        new_envelope(CommandKind.REGISTER_PLACEMENT, KBH, payload, key=v1) for _ in range(COMMANDS)
    ]
    twos = [new_envelope_v2(CommandKind.REGISTER_PLACEMENT, v2, payload) for _ in range(COMMANDS)]
    fields = [one.model_dump(mode="json") for one in ones]
    keys = {v1.key_id: v1}
    public = v2.public.sign_public
    # The canonical forms of protocol 1 are part of the setup: "hmac" is the MAC alone.
    canonicals = [signing.canonical(each) for each in fields]
    if mode == "hmac":
        for signed in canonicals:
            hmac.new(v1.secret.encode(), signed, hashlib.sha256).digest()
    elif mode == "ed25519":
        for two in twos:
            verifies(two.wire, public)
    elif mode == "v1":
        for each, one in zip(fields, ones, strict=True):
            signing.verify(each, keys)
            sealing.open_payload(each["payload"], one.command_id, v1)
    elif mode == "v2":
        for two in twos:
            wire = two.wire
            assert verifies(wire, public)
            sealing_v2.open_payload(
                wire["payload"], wire["principal"], wire["command_id"], wire["kind"], foundation
            )
    elif mode != "setup":
        raise SystemExit(f"mode: setup, hmac, ed25519, v1 or v2, not {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1])
