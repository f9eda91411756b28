"""Protocol 2 keys in the store: only public keys are kept, a key verifies until it is
revoked (then only its holder is told), both protocols' keys are listed, and the operator
never re-signs a version 2 command (one store suite over SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from shared import keys
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import new_envelope_v2
from shared.errors import InvalidInput
from shared.foundation import Foundation
from shared.signing_v2 import FoundationKey, OrganisationKey

KBH = "jobcentre:101"


@pytest.fixture
def foundation(any_store: Any) -> Foundation:
    return Foundation(any_store, foundation_key=FoundationKey.generate())


def registered(foundation: Foundation) -> OrganisationKey:
    assert foundation.foundation_key is not None
    key = OrganisationKey.generate(KBH, foundation.foundation_key.public)
    with foundation.store.write() as conn:
        keys.register_public(conn, key.public, utc_now())
    return key


def test_a_command_verifies_until_its_key_is_revoked(foundation: Foundation) -> None:
    key = registered(foundation)
    envelope = new_envelope_v2(CommandKind.GET_ORDER, key, {"order_id": 1})
    conn = foundation.store.connection()
    assert keys.signer_v2(conn, envelope.wire) == key.public
    with foundation.store.write() as tx:
        keys.revoke(tx, KBH, key.key_id, utc_now())
    assert keys.signer_v2(foundation.store.connection(), envelope.wire) is None
    assert keys.signer_v2(foundation.store.connection(), envelope.wire, revoked=True) == key.public


def test_a_revoked_key_holder_is_told_and_nobody_else(foundation: Foundation) -> None:
    key = registered(foundation)
    with foundation.store.write() as tx:
        keys.revoke(tx, KBH, key.key_id, utc_now())
    answer = foundation.answer(new_envelope_v2(CommandKind.GET_ORDER, key, {"order_id": 1}))
    assert answer.reply["error"]["code"] == "forbidden"
    assert answer.key == key.public, "the reply goes to the revoked key's holder"
    impostor = OrganisationKey(
        KBH,
        key.key_id,
        OrganisationKey.generate(KBH, key.foundation).sign_private,
        key.seal_private,
        key.foundation,
    )
    forged = foundation.answer(new_envelope_v2(CommandKind.GET_ORDER, impostor, {"order_id": 1}))
    assert forged.key is None, "a forgery gets no reply"


def test_the_listing_has_both_protocols_and_no_private_key(foundation: Foundation) -> None:
    key = registered(foundation)
    with foundation.store.write() as tx:
        keys.create(tx, KBH, utc_now())
    listed = keys.listing(foundation.store.connection(), KBH)
    assert sorted(row["protocol"] for row in listed) == [1, 2]
    row = next(row for row in listed if row["protocol"] == 2)
    assert row["key_id"] == key.key_id and row["sign_public"] and row["seal_public"]
    assert "secret" not in row and "sign_private" not in row


def test_a_version_2_command_is_never_resigned_by_the_operator(foundation: Foundation) -> None:
    key = registered(foundation)
    envelope = new_envelope_v2(CommandKind.GET_ORDER, key, {"order_id": 1})
    with (
        foundation.store.write() as tx,
        pytest.raises(InvalidInput, match="signed by its organisation alone"),
    ):
        keys.resign(
            tx,
            envelope.to_json(),
            source="crashed",
            code="unavailable",
            died_at=utc_now(),
            window_ms=60_000,
            retried_at=utc_now(),
            max_age_ms=60_000,
            read_window_ms=60_000,
        )
