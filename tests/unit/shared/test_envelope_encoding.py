"""The envelope a client signs and sends is byte for byte what pydantic's own dump gives.

``new_envelope`` builds the signed fields by hand and adds the signature without
``model_copy`` (see :func:`shared.envelope.signed_fields`); the wire format is a public
contract, so each envelope here is compared with the one the model itself makes: the same
canonical bytes, signature, JSON on the queue, and an equal model.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.commands import CommandKind
from shared.envelope import Envelope, _fresh_id, new_envelope, signed_fields
from shared.errors import InvalidInput
from shared.models import invalid_input_from
from shared.sealing import SEALED_FIELDS, seal_payload
from shared.signing import SigningKey, verify
from tests.factories import CPR_1
from workers.bench.generator import Generator

K = CommandKind
KEY = SigningKey("jobcentre:101", "a1b2c3d4e5f6", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=")
SENT_AT = datetime(2026, 12, 2, 8, 15, 30, tzinfo=UTC)


class Colour(StrEnum):
    RED = "red"


def the_models_own(
    kind: CommandKind,
    principal: str,
    payload: dict[str, Any],
    *,
    command_id: str,
    correlation_id: str,
    caseworker: str | None,
    sent_at: datetime,
) -> Envelope:
    """``new_envelope`` as it was: the model's own dump, json.dumps, hmac, model_copy.

    ``payload`` is already sealed (sealing is random), or has nothing to seal.
    """
    try:
        envelope = Envelope(
            kind=kind,
            command_id=command_id,
            principal=principal,
            correlation_id=correlation_id,
            sent_at=sent_at,
            caseworker=caseworker,
            payload=seal_payload(payload, command_id, KEY),
            key_id=KEY.key_id,
        )
    except ValidationError as error:
        raise invalid_input_from(error) from None
    fields = {k: v for k, v in envelope.model_dump(mode="json").items() if k != "signature"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    mac = hmac.new(KEY.secret.encode(), text, hashlib.sha256).hexdigest()
    return envelope.model_copy(update={"signature": mac})


def assert_as_the_model(envelope: Envelope, principal: str) -> None:
    reference = the_models_own(
        envelope.kind,
        principal,
        envelope.payload,
        command_id=envelope.command_id,
        correlation_id=envelope.correlation_id,
        caseworker=envelope.caseworker,
        sent_at=envelope.sent_at,
    )
    assert signed_fields(envelope) == envelope.model_dump(mode="json")
    assert envelope.signature == reference.signature
    assert envelope.to_json() == reference.model_dump_json()
    assert envelope == reference
    assert envelope.model_fields_set == reference.model_fields_set
    # What the worker checks: the signature over the JSON it receives.
    assert verify(json.loads(envelope.to_json()), {KEY.key_id: KEY}) == KEY


PAYLOADS: list[tuple[CommandKind, dict[str, Any]]] = [
    (K.REGISTER_PLACEMENT, Generator(9).placement(17)),
    (K.REGISTER_PLACEMENT, {"order_id": 3, "cpr": CPR_1, "referral": False, "note": "Ærø æøå"}),
    (K.CHANGE_ORDER_STATUS, {"order_id": 5, "status": "inactivated"}),
    (K.UPDATE_ORDER, {"order_id": 5, "expected_version": 2, "patch": {"positions": 3}}),
    (K.UPDATE_ORDER, {"order_id": 5, "patch": {"title": 'quote " \\ / \n\t\x01 \u2028 ø'}}),
    (K.GET_ORDER, {"order_id": 7}),
    (K.EXPIRE_ORDERS, {}),
    # Not plain JSON: left to pydantic's dump (a tuple, an enum, a NaN, a date).
    (K.UPDATE_ORDER, {"order_id": 5, "patch": {"tags": ("a", "b"), "colour": Colour.RED}}),
    (K.UPDATE_ORDER, {"order_id": 5, "patch": {"score": float("nan"), "on": SENT_AT}}),
    (K.UPDATE_ORDER, {"order_id": 5, "patch": {"numbers": [0.1, 1e16, 1e-7, 2**70, -0.0]}}),
]


@pytest.mark.parametrize(("kind", "payload"), PAYLOADS)
@pytest.mark.parametrize("caseworker", [None, "mette.h@kbh"])
@pytest.mark.parametrize("correlation_id", [None, "corr-0001", "træ \u00e6 \U0001f600"])
def test_a_signed_envelope_is_the_models_own(
    kind: CommandKind, payload: dict[str, Any], caseworker: str | None, correlation_id: str | None
) -> None:
    envelope = new_envelope(
        kind,
        "jobcentre: 101",
        payload,
        correlation_id=correlation_id,
        caseworker=caseworker,
        key=KEY,
    )
    assert envelope.principal == "jobcentre:101"
    assert_as_the_model(envelope, "jobcentre: 101")


@pytest.mark.parametrize(
    "sent_at",
    [
        SENT_AT,
        SENT_AT.replace(microsecond=250_000),
        SENT_AT.replace(microsecond=1),
        SENT_AT.astimezone(timezone(timedelta(hours=2))),
        SENT_AT.astimezone(timezone(timedelta(hours=-3, minutes=-30))),
    ],
)
def test_sent_at_is_written_as_the_model_writes_it(sent_at: datetime) -> None:
    envelope = new_envelope(
        K.GET_ORDER,
        "jobcentre:101",
        {"order_id": 1},
        key=KEY,
        command_id="cmd-0001",
        sent_at=sent_at,
    )
    assert_as_the_model(envelope, "jobcentre:101")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def outcome(make: Any, payload: dict[str, Any], correlation_id: str) -> tuple[Any, ...]:
    try:
        envelope = make(
            K.UPDATE_ORDER,
            "jobcentre:101",
            payload,
            command_id="cmd-0001",
            correlation_id=correlation_id,
            caseworker=None,
            sent_at=SENT_AT,
        )
    except InvalidInput as error:
        return ("refused", error.message, error.field)
    except Exception as error:
        return ("failed", type(error).__name__)
    return ("sent", envelope.to_json(), envelope)


def signed_now(kind: CommandKind, principal: str, payload: dict[str, Any], **given: Any) -> Any:
    return new_envelope(kind, principal, payload, key=KEY, **given)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8).filter(lambda name: name not in SEALED_FIELDS), JSON),
    st.text(min_size=1, max_size=12),
)
def test_any_payload_is_signed_as_the_model_dumps_it(
    payload: dict[str, Any], correlation_id: str
) -> None:
    assert outcome(signed_now, payload, correlation_id) == outcome(
        the_models_own, payload, correlation_id
    )


def test_a_text_without_utf8_form_is_signed_as_before() -> None:
    # A lone surrogate in the payload passes the JSON-mode dump as it is (only to_json
    # refuses it); the envelope's own text fields are refused when validated.
    given = {"command_id": "cmd-0001", "caseworker": None, "sent_at": SENT_AT}
    for payload, correlation_id in [({"order_id": 1, "x": "\ud800"}, "c")]:
        now = signed_now(
            K.GET_ORDER, "jobcentre:101", payload, correlation_id=correlation_id, **given
        )
        before = the_models_own(
            K.GET_ORDER, "jobcentre:101", payload, correlation_id=correlation_id, **given
        )
        assert now == before and now.signature == before.signature


def test_bad_input_is_refused_as_before() -> None:
    for _ in range(2):  # the second time from the principal cache's miss, not a cached value
        with pytest.raises(InvalidInput) as caught:
            new_envelope(K.GET_ORDER, "root", {"order_id": 1}, key=KEY)
        assert caught.value.field == "principal"
    with pytest.raises(InvalidInput) as caught:
        new_envelope(K.GET_ORDER, "jobcentre:101", {"order_id": 1}, command_id="x", key=KEY)
    assert caught.value.field == "command_id"
    with pytest.raises(InvalidInput) as caught:
        new_envelope(K.GET_ORDER, "jobcentre:101", {"order_id": 1}, caseworker="a b", key=KEY)
    assert caught.value.field == "caseworker"
    with pytest.raises(InvalidInput) as caught:
        new_envelope(K.GET_ORDER, "jobcentre:101", {1: 1}, key=KEY)  # type: ignore[dict-item]
    assert caught.value.field == "payload.1.[key]"


def test_fresh_ids_are_version_4_uuids() -> None:
    ids = {_fresh_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex == value
