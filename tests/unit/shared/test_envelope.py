"""The envelope decoder takes anything and returns an envelope or a clear InvalidInput."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.commands import CommandKind
from shared.envelope import decode_envelope, mask_personal_data, new_envelope
from shared.errors import InvalidInput
from tests.factories import CPR_1


def valid() -> dict[str, Any]:
    envelope = new_envelope(CommandKind.GET_ORDER, "jobcentre:101", {"order_id": 1})
    document: dict[str, Any] = json.loads(envelope.to_json())
    return document


def test_a_valid_envelope_round_trips() -> None:
    envelope = new_envelope(CommandKind.GET_ORDER, "akasse:3f", {"order_id": 7}, caseworker="mette")
    assert decode_envelope(envelope.to_json()) == envelope


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b"\xff\xfe", "envelope", id="not-utf8"),
        pytest.param("[]", "envelope", id="not-an-object"),
        pytest.param(
            json.dumps(valid() | {"schema_version": 3}), "schema_version", id="future-schema"
        ),
        pytest.param(json.dumps(valid() | {"kind": "drop_tables"}), "kind", id="unknown-kind"),
        pytest.param(
            json.dumps(valid() | {"principal": "root"}), "principal", id="unknown-principal"
        ),
        pytest.param(
            json.dumps(valid() | {"command_id": "x"}), "command_id", id="short-command-id"
        ),
        pytest.param(json.dumps(valid() | {"extra": 1}), "extra", id="unknown-field"),
        pytest.param("x" * 300_000, "envelope", id="too-large"),
    ],
)
def test_bad_envelopes_name_what_is_wrong(raw: str | bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_envelope(raw)
    assert caught.value.field == field


@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=8),
    )
)
def test_any_input_decodes_or_raises_invalid_input(raw: Any) -> None:
    try:
        envelope = decode_envelope(raw)
    except InvalidInput as error:
        refusal = error.message
    else:
        refusal = ""
        assert envelope.schema_version == 1
    assert refusal or envelope, "every input is either an envelope or a stated refusal"


def test_masking_replaces_every_cpr_at_any_depth() -> None:
    masked = mask_personal_data({"payload": {"cpr": CPR_1, "items": [{"cpr": CPR_1}]}})
    assert CPR_1 not in json.dumps(masked)
    assert masked["payload"]["items"][0]["cpr"] == "**********"
