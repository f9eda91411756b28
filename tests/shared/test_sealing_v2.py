"""Protocol 2 seals open only for their recipient and their command: another principal,
command id or kind in the associated data, an altered ciphertext, a low-order ephemeral
key or a padded base64url value is refused naming the field; a reply opens only for the
send it names and only when the foundation signed it."""

from __future__ import annotations

from typing import Any

import pytest

from shared.canonical_v2 import b64url, unb64url
from shared.errors import InvalidInput
from shared.sealing_v2 import open_payload, open_reply, seal_payload, seal_reply
from shared.signing_v2 import FoundationKey, OrganisationKey, sign

KBH = "jobcentre:101"
FOUNDATION = FoundationKey.generate()
KEY = OrganisationKey.generate(KBH, FOUNDATION.public)
PAYLOAD = {"order_id": 7, "cpr": "0101901234"}
SEALED = seal_payload(PAYLOAD, KBH, "cmd-00000001", "register_placement", FOUNDATION.public)


def test_a_payload_opens_for_its_command() -> None:
    assert open_payload(SEALED, KBH, "cmd-00000001", "register_placement", FOUNDATION) == PAYLOAD


@pytest.mark.parametrize(
    ("principal", "command_id", "kind"),
    [
        pytest.param("jobcentre:751", "cmd-00000001", "register_placement", id="other-principal"),
        pytest.param(KBH, "cmd-00000002", "register_placement", id="other-command-id"),
        pytest.param(KBH, "cmd-00000001", "change_placement_status", id="other-kind"),
    ],
)
def test_a_payload_moved_to_another_command_does_not_open(
    principal: str, command_id: str, kind: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        open_payload(SEALED, principal, command_id, kind, FOUNDATION)
    assert refused.value.field == "payload.sealed"


def altered(**changes: str) -> dict[str, Any]:
    return {"sealed": {**SEALED["sealed"], **changes}}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(altered(ct=SEALED["sealed"]["ct"][:-2] + "AA"), "payload.sealed", id="ct"),
        pytest.param(altered(enc=b64url(bytes(32))), "payload.sealed", id="low-order-enc"),
        pytest.param(altered(enc=SEALED["sealed"]["enc"] + "="), "payload.sealed.enc", id="padded"),
        pytest.param({"order_id": 7}, "payload", id="in-clear"),
        pytest.param({"sealed": SEALED["sealed"], "order_id": 7}, "payload", id="beside-the-seal"),
    ],
)
def test_a_malformed_or_altered_payload_is_refused_naming_the_field(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        open_payload(payload, KBH, "cmd-00000001", "register_placement", FOUNDATION)
    assert refused.value.field == field


def test_base64url_values_are_refused_with_padding_or_the_wrong_length() -> None:
    with pytest.raises(InvalidInput, match="base64url"):
        unb64url("AAAA==", "x")
    with pytest.raises(InvalidInput, match="32 bytes"):
        unb64url(b64url(bytes(31)), "x", 32)


def test_a_reply_opens_only_for_the_send_it_names_and_the_foundations_signature() -> None:
    reply = {"command_id": "cmd-00000001", "ok": True, "result": {"id": 7}}
    wire = seal_reply(reply, KBH, "SIG-1", KEY.public.seal_public, FOUNDATION)
    assert open_reply(wire, KEY, "cmd-00000001", "SIG-1") == reply
    assert open_reply(wire, KEY, "cmd-00000001", "SIG-2") is None, "another send's reply"
    resigned = {**wire, "signature": sign(wire, FoundationKey.generate().sign_private)}
    assert open_reply(resigned, KEY, "cmd-00000001", "SIG-1") is None, "not the foundation's"
    other = OrganisationKey.generate("jobcentre:751", FOUNDATION.public)
    assert open_reply(wire, other, "cmd-00000001", "SIG-1") is None, "another organisation"
