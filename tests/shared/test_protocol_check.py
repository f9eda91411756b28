"""``shared.protocol_check.check`` says offline what the foundation would refuse in a
command, naming the field, and gives the canonical bytes the signature must cover."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import signing
from shared.canonical_v2 import signed_bytes
from shared.commands import CommandKind
from shared.envelope import new_envelope, new_envelope_v2
from shared.protocol_check import check
from shared.signing import SigningKey
from shared.signing_v2 import FoundationKey, OrganisationKey, sign

K = CommandKind
KBH = "jobcentre:101"
FOUNDATION = FoundationKey.generate()
KEY = OrganisationKey.generate(KBH, FOUNDATION.public)
NOW = datetime(2026, 12, 7, 14, 0, 0, 250_000, tzinfo=UTC)


def good(**payload: Any) -> dict[str, Any]:
    envelope = new_envelope_v2(K.GET_ORDER, KEY, payload or {"order_id": 7}, sent_at=NOW)
    return dict(envelope.wire)


def resigned(wire: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = {**{k: v for k, v in wire.items() if k != "signature"}, **changes}
    changed["signature"] = sign(changed, KEY.sign_private)
    return changed


def fields(wire: dict[str, Any], **options: Any) -> list[str]:
    report = check(json.dumps(wire), KEY, foundation=FOUNDATION, now=NOW, **options)
    return [problem.field for problem in report.problems]


def test_a_well_formed_version_2_command_passes_and_shows_its_canonical_form() -> None:
    wire = good()
    report = check(wire, KEY, foundation=FOUNDATION, now=NOW)
    assert report.ok, report.problems
    assert report.version == 2
    assert report.canonical == signed_bytes(wire).decode()
    assert '"sent_at":"2026-12-07T14:00:00.250Z"' in report.canonical


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"principal": "JOBCENTRE:101"}, "principal", id="principal-upper-case"),
        pytest.param({"principal": "jobcentre: 101"}, "principal", id="principal-not-normal"),
        pytest.param({"sent_at": "2026-12-07T14:00:00.250000+00:00"}, "sent_at", id="offset"),
        pytest.param({"sent_at": "2026-12-07T14:00:00.25Z"}, "sent_at", id="two-digit-millis"),
        pytest.param({"sent_at": "2026-12-07T13:00:00.000Z"}, "sent_at", id="expired"),
        pytest.param({"surplus": True}, "surplus", id="unknown-member"),
        pytest.param({"key_id": "k2-another"}, "key_id", id="another-key-id"),
    ],
)
def test_each_refused_form_is_named_by_its_field(changes: dict[str, Any], field: str) -> None:
    assert field in fields(resigned(good(), **changes))


def test_a_missing_caseworker_null_is_named() -> None:
    wire = good()
    del wire["caseworker"]
    assert "caseworker" in fields(resigned(wire))


def test_content_changed_after_signing_is_a_signature_problem() -> None:
    assert fields({**good(), "correlation_id": "changed-after"}) == ["signature"]


def test_a_payload_sealed_to_another_foundation_does_not_open() -> None:
    other = OrganisationKey(
        KBH, KEY.key_id, KEY.sign_private, KEY.seal_private, FoundationKey.generate().public
    )
    wire = dict(new_envelope_v2(K.GET_ORDER, other, {"order_id": 7}, sent_at=NOW).wire)
    assert fields(wire) == ["payload.sealed"]


def test_an_opened_payload_is_validated_against_its_kind() -> None:
    assert fields(good(order_id="seven")) == ["payload.order_id"]


def test_given_canonical_bytes_are_compared_byte_by_byte() -> None:
    wire = good()
    expected = signed_bytes(wire)
    python_form = json.dumps(
        {k: v for k, v in wire.items() if k != "signature"}, sort_keys=True
    ).encode()
    report = check(wire, KEY, now=NOW, canonical_given=python_form)
    assert [p.field for p in report.problems] == ["canonical"]
    assert "byte 1" in report.problems[0].message
    assert check(wire, KEY, now=NOW, canonical_given=expected).ok


def test_the_dramatiq_message_around_it_is_checked_too() -> None:
    message = {"actor_name": "search_orders", "args": [json.dumps(good())], "kwargs": {}}
    report = check(json.dumps(message), KEY, foundation=FOUNDATION, now=NOW)
    assert [p.field for p in report.problems] == ["actor_name"]


def test_version_1_says_which_form_the_worker_would_sign() -> None:
    v1 = SigningKey.generate(KBH)
    envelope = new_envelope(K.GET_ORDER, KBH, {"order_id": 7}, key=v1, sent_at=NOW)
    wire = json.loads(envelope.to_json())
    assert check(wire, v1, now=NOW).ok
    written = wire["sent_at"]
    # An integrator signing its own form of sent_at, not the one the worker writes back.
    wire["sent_at"] = NOW.isoformat(timespec="milliseconds")
    wire["signature"] = hmac.new(
        v1.secret.encode(), signing.canonical(wire), hashlib.sha256
    ).hexdigest()
    report = check(wire, v1, now=NOW)
    problems = {p.field: p.message for p in report.problems}
    assert set(problems) == {"signature", "sent_at"}
    assert written in problems["sent_at"], "it names the form the worker writes back"
    assert report.canonical is not None and written in report.canonical


def test_a_key_file_of_the_other_version_is_named() -> None:
    assert fields(good()) == []
    report = check(good(), SigningKey.generate(KBH), now=NOW)
    assert [p.field for p in report.problems] == ["key_file"]
