"""Only an organisation's own key makes a command theirs; anything else is refused and kept."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import keys
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope
from shared.foundation import Foundation
from shared.signing import SigningKey, signature
from shared.store import SqliteStore as Store
from shared.store import list_dead_letters
from tests.factories import order_doc

JOBCENTRE = "jobcentre:101"


@pytest.fixture
def foundation(tmp_path: Path) -> Foundation:
    return Foundation(Store(tmp_path / "store.db"), max_age_ms=60_000)


def make_key(f: Foundation, principal: str = JOBCENTRE) -> SigningKey:
    with f.store.write() as conn:
        return keys.create(conn, principal, utc_now())


def register(key: SigningKey | None, principal: str = JOBCENTRE, **changes: Any) -> Envelope:
    return new_envelope(
        CommandKind.REGISTER_ORDER, principal, {"order": order_doc()}, key=key, **changes
    )


def count(f: Foundation, table: str) -> int:
    return int(f.store.connection().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def tampered(f: Foundation) -> Envelope:
    envelope = register(make_key(f))
    return envelope.model_copy(update={"payload": {"order": order_doc(positions=99)}})


def forged(f: Foundation) -> Envelope:
    make_key(f)
    return register(SigningKey.generate(JOBCENTRE))


def other_organisations_key(f: Foundation) -> Envelope:
    make_key(f)
    theirs = make_key(f, "jobcentre:751")
    return register(SigningKey(JOBCENTRE, theirs.key_id, theirs.secret))


def expired(f: Foundation) -> Envelope:
    return register(make_key(f), sent_at=utc_now() - timedelta(minutes=5))


def from_the_future(f: Foundation) -> Envelope:
    return register(make_key(f), sent_at=utc_now() + timedelta(hours=1))


def revoked(f: Foundation) -> Envelope:
    key = make_key(f)
    with f.store.write() as conn:
        keys.revoke(conn, JOBCENTRE, key.key_id, utc_now())
    return register(key)


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param(lambda f: register(None), id="unsigned"),
        pytest.param(forged, id="forged"),
        pytest.param(tampered, id="tampered"),
        pytest.param(other_organisations_key, id="other-organisations-key"),
        pytest.param(expired, id="expired"),
        pytest.param(from_the_future, id="future"),
        pytest.param(revoked, id="revoked-key"),
    ],
)
def test_is_refused_recorded_and_never_applied(foundation: Foundation, attempt: Any) -> None:
    reply = foundation.handle(attempt(foundation))
    assert reply["error"]["code"] == "forbidden"
    assert count(foundation, "orders") == 0
    assert count(foundation, "commands") == 0, "a refused attempt must not claim its command id"
    [letter] = list_dead_letters(foundation.store.connection())
    assert (letter["source"], letter["code"]) == ("rejected", "forbidden")


def test_two_keys_are_valid_during_a_rotation(foundation: Foundation) -> None:
    old, new = make_key(foundation), make_key(foundation)
    assert foundation.handle(register(old))["ok"]
    assert foundation.handle(register(new))["ok"]
    with foundation.store.write() as conn:
        keys.revoke(conn, JOBCENTRE, old.key_id, utc_now())
    assert foundation.handle(register(old))["error"]["code"] == "forbidden"
    assert foundation.handle(register(new))["ok"]


def test_a_replay_inside_the_window_changes_nothing(foundation: Foundation) -> None:
    envelope = register(make_key(foundation))
    first = foundation.handle(envelope)
    assert foundation.handle(envelope) == first
    assert count(foundation, "orders") == 1


def test_a_redelivery_after_the_window_gets_the_stored_reply(tmp_path: Path) -> None:
    now = [utc_now()]
    foundation = Foundation(Store(tmp_path / "store.db"), clock=lambda: now[0], max_age_ms=60_000)
    envelope = register(make_key(foundation))
    first = foundation.handle(envelope)
    now[0] += timedelta(hours=2)
    assert foundation.handle(envelope) == first
    assert count(foundation, "orders") == 1


def test_the_signature_covers_every_field(foundation: Foundation) -> None:
    key = make_key(foundation)
    envelope = register(key)
    fields = envelope.model_dump(mode="json")
    for name in ("principal", "kind", "command_id", "sent_at", "correlation_id", "key_id"):
        changed = {**fields, name: "x"}
        assert signature(changed, key) != envelope.signature, name
