"""A reply is believed only if it verifies for the exact command its client sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.errors import NotAuthenticated
from shared.sealing import open_payload, open_reply, seal_payload, seal_reply
from shared.signing import SigningKey

KEY = SigningKey.generate("jobcentre:101")
OTHER = SigningKey.generate("akasse:3f")
COMMAND_ID = "cmd-00000001"
SIGNATURE = "ab" * 32
REPLY: dict[str, Any] = {"command_id": COMMAND_ID, "ok": True, "result": {"cpr": "0101901234"}}


def wire(**changes: Any) -> dict[str, Any]:
    sealed = seal_reply(REPLY, KEY, SIGNATURE)
    sealed.update(changes)
    return sealed


def test_a_reply_opens_for_its_command() -> None:
    assert open_reply(wire(), KEY, COMMAND_ID, SIGNATURE) == REPLY


def test_the_reply_on_redis_holds_no_personal_data_in_clear() -> None:
    assert "0101901234" not in json.dumps(wire())


@pytest.mark.parametrize(
    ("sealed", "key", "command_id", "signature"),
    [
        pytest.param(wire(), KEY, COMMAND_ID, "cd" * 32, id="answers-another-send-of-the-id"),
        pytest.param(wire(), KEY, "cmd-00000002", SIGNATURE, id="another-command-id"),
        pytest.param(wire(), OTHER, COMMAND_ID, SIGNATURE, id="another-organisations-key"),
        pytest.param(wire(ok=False), KEY, COMMAND_ID, SIGNATURE, id="outcome-flipped"),
        pytest.param(
            wire(body=wire()["body"][:-4] + "AAAA"), KEY, COMMAND_ID, SIGNATURE, id="body-tampered"
        ),
        pytest.param(wire(mac="0" * 64), KEY, COMMAND_ID, SIGNATURE, id="mac-forged"),
        pytest.param(
            {"command_id": COMMAND_ID, "ok": False, "error": {"code": "forbidden"}},
            KEY,
            COMMAND_ID,
            SIGNATURE,
            id="unauthenticated-old-format",
        ),
        pytest.param(wire(v=2), KEY, COMMAND_ID, SIGNATURE, id="unknown-version"),
        pytest.param(wire(body=12), KEY, COMMAND_ID, SIGNATURE, id="body-not-a-string"),
    ],
)
def test_anything_else_is_not_this_commands_reply(
    sealed: dict[str, Any], key: SigningKey, command_id: str, signature: str
) -> None:
    assert open_reply(sealed, key, command_id, signature) is None


def test_a_sealed_field_is_bound_to_its_command_id_and_name() -> None:
    payload = seal_payload({"cpr": "0101901234", "note": None}, COMMAND_ID, KEY)
    assert payload["note"] is None, "an absent field stays absent"
    assert open_payload(payload, COMMAND_ID, KEY)["cpr"] == "0101901234"
    with pytest.raises(NotAuthenticated):
        open_payload(payload, "cmd-00000002", KEY)
    with pytest.raises(NotAuthenticated):
        open_payload({"note": payload["cpr"]}, COMMAND_ID, KEY)
