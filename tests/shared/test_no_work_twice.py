"""No work twice on the write path, and none of it at the cost of a check.

Stored orders are read back without the identifier checks (a client's input keeps them
all), an event reuses the order document the store holds, and signing keys are cached per
store: a revocation through the same store is seen at once, one by another process within
:data:`shared.keys.KEY_CACHE_MS`.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from pydantic import ValidationError

from shared import keys
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import mask_personal_data, masked_json, new_envelope
from shared.foundation import Foundation
from shared.models import JobOrder, OrderDraft, Placement
from shared.signing import SigningKey
from shared.store import Store, open_url
from shared.store.interface import Params, Result, Tx
from tests.factories import CPR_1, CPR_2, CPR_3, order_doc
from tests.shared.test_foundation import JOBCENTRE, key_of, ok, register

K = CommandKind


@pytest.fixture
def foundation(any_store: Store) -> Foundation:
    """A foundation on a fresh store of each engine (SQLite, PostgreSQL)."""
    return Foundation(any_store)


def _stored_doc(f: Foundation, order_id: int) -> str:
    row = f.store.connection().execute("SELECT doc FROM orders WHERE id = ?", (order_id,))
    return str(row.fetchone()[0])


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        pytest.param(("employer", "cvr"), "12345678", id="cvr-check-digit"),
        pytest.param(("employer", "p_number"), "12", id="p-number-length"),
        pytest.param(("address", "postcode"), "0000", id="postcode"),
        pytest.param(("address", "municipality"), "999", id="municipality"),
    ],
)
def test_a_stored_order_skips_the_identifier_checks_a_client_input_gets(
    foundation: Foundation, path: tuple[str, str], bad: str
) -> None:
    order_id = register(foundation)["id"]
    document = json.loads(_stored_doc(foundation, order_id))
    document[path[0]][path[1]] = bad
    doc = json.dumps(document)
    assert getattr(getattr(JobOrder.from_stored(doc), path[0]), path[1]) == bad
    with pytest.raises(ValidationError):
        JobOrder.model_validate_json(doc)
    draft = order_doc()
    draft[path[0]] = {**draft[path[0]], path[1]: bad}
    with pytest.raises(ValidationError):
        OrderDraft.model_validate(draft)


def test_a_stored_order_is_still_parsed_for_types(foundation: Foundation) -> None:
    order_id = register(foundation)["id"]
    document = json.loads(_stored_doc(foundation, order_id))
    document["positions"] = "many"
    with pytest.raises(ValidationError):
        JobOrder.from_stored(json.dumps(document))


def test_each_event_holds_the_order_document_as_encoded(foundation: Foundation) -> None:
    order_id = register(foundation)["id"]
    ok(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order_id, "cpr": CPR_1})
    ok(
        foundation,
        JOBCENTRE,
        K.UPDATE_ORDER,
        {"order_id": order_id, "expected_version": 1, "patch": {"positions": 4}},
    )
    ok(
        foundation,
        JOBCENTRE,
        K.CHANGE_ORDER_STATUS,
        {"order_id": order_id, "status": "inactivated"},
    )
    rows = (
        foundation.store.connection()
        .execute("SELECT type, order_doc FROM events ORDER BY seq")
        .fetchall()
    )
    assert [row[0] for row in rows] == [
        "order_registered",
        "placement_log_updated",
        "order_updated",
        "order_status_changed",
    ]
    for row in rows:
        doc = str(row[1])
        assert JobOrder.from_stored(doc).model_dump_json() == doc, row[0]
    # The placement did not change the order: its event holds the registered document.
    assert rows[1][1] == rows[0][1]
    assert rows[-1][1] == _stored_doc(foundation, order_id)
    assert JobOrder.from_stored(rows[2][1]).positions == 4


class Clock:
    """A monotonic clock in milliseconds that moves only when told."""

    def __init__(self) -> None:
        self.now_ms = 0.0

    def __call__(self) -> float:
        return self.now_ms


def _cached(f: Foundation) -> Clock:
    clock = Clock()
    keys.use_cache(f.store.connection(), keys.KeyCache(clock_ms=clock))
    return clock


def _send(f: Foundation, key: SigningKey) -> str:
    reply = f.handle(new_envelope(K.REGISTER_ORDER, JOBCENTRE, {"order": order_doc()}, key=key))
    return "ok" if reply["ok"] else str(reply["error"]["code"])


def test_a_key_revoked_by_another_process_is_refused_once_the_bound_passed(
    foundation: Foundation, store_url: str
) -> None:
    clock = _cached(foundation)
    other = open_url(store_url)  # the operator's `jobordre keys` process
    try:
        with other.write() as conn:
            key = keys.create(conn, JOBCENTRE, utc_now())
        assert _send(foundation, key) == "ok"
        with other.write() as conn:
            keys.revoke(conn, JOBCENTRE, key.key_id, utc_now())
    finally:
        other.close()
    clock.now_ms = keys.KEY_CACHE_MS - 1
    assert _send(foundation, key) == "ok", "inside the bound the cached keys are trusted"
    clock.now_ms = keys.KEY_CACHE_MS
    assert _send(foundation, key) == "forbidden"


def test_a_key_revoked_through_the_same_store_is_refused_at_once(foundation: Foundation) -> None:
    clock = _cached(foundation)
    key = key_of(foundation, JOBCENTRE)
    clock.now_ms = keys.KEY_CACHE_MS  # past the bound: the keys are cached again
    assert _send(foundation, key) == "ok"
    with foundation.store.write() as conn:
        keys.revoke(conn, JOBCENTRE, key.key_id, utc_now())
    assert _send(foundation, key) == "forbidden"


def test_keys_changed_through_the_same_store_are_read_afresh_for_the_bound(
    foundation: Foundation, store_url: str
) -> None:
    clock = _cached(foundation)
    key = key_of(foundation, JOBCENTRE)
    assert _send(foundation, key) == "ok"
    other = open_url(store_url)
    try:
        with other.write() as conn:
            keys.revoke(conn, JOBCENTRE, key.key_id, utc_now())
    finally:
        other.close()
    # The change made here may still have been uncommitted when the first command read
    # the keys: that read was not cached, so the other process's revocation counts at once.
    clock.now_ms = keys.KEY_CACHE_MS - 1
    assert _send(foundation, key) == "forbidden"


def test_a_key_created_by_another_process_works_at_once(
    foundation: Foundation, store_url: str
) -> None:
    _cached(foundation)
    assert _send(foundation, key_of(foundation, JOBCENTRE)) == "ok"
    other = open_url(store_url)
    try:
        with other.write() as conn:
            new = keys.create(conn, JOBCENTRE, utc_now())
    finally:
        other.close()
    assert _send(foundation, new) == "ok"


class _InvalidatedMidRead:
    """A connection whose key read is overtaken by a change of the keys (another thread)."""

    def __init__(self, conn: Tx, cache: keys.KeyCache) -> None:
        self.conn = conn
        self.cache = cache
        self.memo = conn.memo

    def execute(self, sql: str, params: Params = ()) -> Result:
        rows = self.conn.execute(sql, params)
        self.cache.invalidate(JOBCENTRE)
        return rows


def test_a_read_overtaken_by_a_change_does_not_cache_what_it_read(
    foundation: Foundation,
) -> None:
    key = key_of(foundation, JOBCENTRE)
    cache = keys.KeyCache(clock_ms=Clock())
    racing: Any = _InvalidatedMidRead(foundation.store.connection(), cache)
    assert set(cache.valid_keys(cast(Tx, racing), JOBCENTRE)) == {key.key_id}
    with foundation.store.write() as conn:
        keys.revoke(conn, JOBCENTRE, key.key_id, utc_now())
    assert cache.valid_keys(foundation.store.connection(), JOBCENTRE) == {}


def test_a_placement_reply_is_the_placement_models_json(foundation: Foundation) -> None:
    # The reply is built as the dict Placement dumps, without the model: same fields, same
    # order, times written as pydantic writes them.
    order = register(foundation)
    placing = {"order_id": order["id"], "cpr": CPR_1, "referral": True, "note": "ringer"}
    mine = ok(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, placing)
    changed = ok(
        foundation,
        JOBCENTRE,
        K.CHANGE_PLACEMENT_STATUS,
        {"order_id": order["id"], "placement_id": mine["id"], "status": "hired"},
    )
    for reply in (mine, changed):
        assert list(reply) == list(Placement.model_fields)
        assert Placement.model_validate(reply).model_dump(mode="json") == reply
    assert changed["created_at"] == mine["created_at"] != changed["updated_at"]


@pytest.mark.parametrize(
    "value",
    [
        {"command_id": "c-1", "ok": True, "result": {"id": 1, "cpr": CPR_1, "note": "x"}},
        {"command_id": "c-1", "ok": False, "error": {"code": "x", "field": "cpr"}},
        {"ok": True, "result": {"cpr": None, "items": [{"deep": {"cpr": CPR_1}}]}},
        {"ok": True, "result": {"title": 'a "cpr": b', "tags": ["cpr"]}},
        {"ok": True, "result": {"title": "Tømrer", "positions": 3}},
    ],
)
def test_the_ledger_reply_is_masked_as_before(value: dict[str, Any]) -> None:
    assert masked_json(value) == json.dumps(mask_personal_data(value))


def test_active_referrals_are_counted_from_the_placements_read_once(
    foundation: Foundation,
) -> None:
    # R3b counted from the rows the placement read for its duplicate check: a placement
    # that is no referral, and a referral no longer active, do not count.
    order = register(foundation, max_referrals=2)

    def place(cpr: str, referral: bool) -> dict[str, Any]:
        payload = {"order_id": order["id"], "cpr": cpr, "referral": referral}
        return ok(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, payload)

    def status() -> str:
        got = ok(foundation, JOBCENTRE, K.GET_ORDER, {"order_id": order["id"]})
        return str(got["status"])

    withdrawn = place(CPR_1, referral=True)
    ok(
        foundation,
        JOBCENTRE,
        K.CHANGE_PLACEMENT_STATUS,
        {"order_id": order["id"], "placement_id": withdrawn["id"], "status": "withdrawn"},
    )
    place(CPR_2, referral=False)
    place(CPR_3, referral=True)
    assert status() == "processing"
    place("1102851234", referral=True)
    assert status() == "inactivated"
