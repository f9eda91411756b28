"""The event log: what each change writes to the outbox, and the header the relay pushes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared import eventlog
from shared.commands import CommandKind
from shared.events import EventHeader
from shared.foundation import Foundation
from shared.store import SqliteStore as Store
from shared.store import Store as AnyStore
from tests.factories import CPR_1
from tests.shared.test_foundation import JOBCENTRE, ok, register

K = CommandKind


@pytest.fixture
def foundation(tmp_path: Path) -> Foundation:
    return Foundation(Store(tmp_path / "store.db"))


def headers(f: Foundation) -> list[dict[str, Any]]:
    rows = f.store.connection().execute("SELECT header FROM events ORDER BY seq").fetchall()
    return [json.loads(row[0]) for row in rows]


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param("0101901234", id="plain"),
        pytest.param("010190-1234", id="dash"),
        pytest.param("010190 1234", id="space"),
        pytest.param("010190\u20131234", id="en-dash"),
    ],
)
def test_a_cpr_typed_into_a_title_never_reaches_the_header(
    foundation: Foundation, typed: str
) -> None:
    order = register(foundation, title=f"Pedel, spørg {typed}")
    ok(
        foundation,
        JOBCENTRE,
        K.UPDATE_ORDER,
        {"order_id": order["id"], "expected_version": 1, "patch": {"positions": 2}},
    )
    for header in headers(foundation):
        assert header["title"] == "Pedel, spørg **********"
    # The order itself, for those entitled to it, keeps what was typed.
    assert order["title"] == f"Pedel, spørg {typed}"


def test_a_status_change_says_what_the_status_was(foundation: Foundation) -> None:
    order = register(foundation)
    ok(
        foundation,
        JOBCENTRE,
        K.CHANGE_ORDER_STATUS,
        {"order_id": order["id"], "status": "inactivated"},
    )
    header = headers(foundation)[-1]
    assert (header["previous_status"], header["status"]) == ("processing", "inactivated")


@pytest.mark.parametrize(
    "action", [pytest.param(K.TAKE_ORDER, id="take"), pytest.param(K.RELEASE_ORDER, id="release")]
)
def test_take_and_release_keep_the_status_and_say_so(
    foundation: Foundation, action: CommandKind
) -> None:
    order = register(foundation)
    ok(foundation, "jobcentre:751", K.TAKE_ORDER, {"order_id": order["id"]})
    if action == K.RELEASE_ORDER:
        ok(foundation, "jobcentre:751", K.RELEASE_ORDER, {"order_id": order["id"]})
    header = headers(foundation)[-1]
    assert header["type"] == "order_status_changed"
    assert header["previous_status"] == header["status"] == "processing"


def test_every_stored_header_is_the_models_json_to_the_byte(foundation: Foundation) -> None:
    # The write path encodes headers without building EventHeader (events.header_json):
    # what it stores must be what the model writes, field order and escaping included.
    # (A title takes no control characters; quotes, backslashes and non-ASCII it does.)
    order = register(foundation, title='Tømrer "søges" \\ nu – straks\u2028')
    ok(
        foundation,
        JOBCENTRE,
        K.UPDATE_ORDER,
        {"order_id": order["id"], "expected_version": 1, "patch": {"positions": 2}},
    )
    placement = ok(
        foundation,
        JOBCENTRE,
        K.REGISTER_PLACEMENT,
        {"order_id": order["id"], "cpr": CPR_1, "referral": True},
    )
    ok(
        foundation,
        JOBCENTRE,
        K.CHANGE_PLACEMENT_STATUS,
        {"order_id": order["id"], "placement_id": placement["id"], "status": "hired"},
    )
    ok(
        foundation,
        JOBCENTRE,
        K.CHANGE_ORDER_STATUS,
        {"order_id": order["id"], "status": "closed_filled"},
    )
    rows = foundation.store.connection().execute("SELECT header FROM events ORDER BY seq")
    stored = [str(row[0]) for row in rows.fetchall()]
    assert len(stored) == 5
    for header in stored:
        assert EventHeader.model_validate_json(header).model_dump_json() == header


def _log_of(store: AnyStore, count: int) -> None:
    """``count`` events, as many changes would record them (one write each)."""
    for _ in range(count):
        with store.write() as tx:
            seq, _epoch = tx.next_event()
            tx.execute(
                "INSERT INTO events (seq, id, type, at, order_id, employer_cvr, header,"
                " order_doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    f"e{seq}",
                    "order_registered",
                    f"2026-01-01T00:00:{seq:02d}+00:00",
                    1,
                    "x",
                    f'{{"seq": {seq}}}',
                    "{}",
                ),
            )


@pytest.mark.parametrize(
    ("mark", "limit", "expected"),
    [
        pytest.param(0, 100, [1, 2, 3, 4, 5, 6], id="nothing-pushed"),
        pytest.param(3, 100, [4, 5, 6], id="some-pushed"),
        pytest.param(3, 2, [4, 5], id="a-batch"),
        pytest.param(6, 100, [], id="all-pushed"),
    ],
)
def test_unpushed_is_every_event_above_the_mark_in_seq_order(
    any_store: AnyStore, mark: int, limit: int, expected: list[int]
) -> None:
    _log_of(any_store, 6)
    with any_store.write() as tx:
        eventlog.mark_pushed(tx, mark)
    with any_store.read() as tx:
        batch = eventlog.unpushed(tx, limit)
        assert [seq for seq, _ in batch] == expected
        assert [header for _, header in batch] == [f'{{"seq": {seq}}}' for seq in expected]
        waiting, oldest = eventlog.backlog(tx)
    assert waiting == 6 - mark
    assert oldest == (f"2026-01-01T00:00:{mark + 1:02d}+00:00" if mark < 6 else None)


@pytest.mark.parametrize(
    ("marks", "expected"),
    [
        # Two relays racing: one read events up to 20 and marked them; the other, with an
        # older batch, marks 15 after it. The mark stays at 20.
        pytest.param([20, 15], 20, id="a-later-lower-mark"),
        pytest.param([15, 20], 20, id="in-order"),
        pytest.param([20, 20], 20, id="the-same-twice"),
        pytest.param([0], 0, id="nothing"),
    ],
)
def test_the_mark_never_goes_down(any_store: AnyStore, marks: list[int], expected: int) -> None:
    _log_of(any_store, 25)
    for mark in marks:
        with any_store.write() as tx:
            eventlog.mark_pushed(tx, mark)
    with any_store.read() as tx:
        assert eventlog.pushed_upto(tx) == expected
        assert [seq for seq, _ in eventlog.unpushed(tx, 100)] == list(range(expected + 1, 26))
        assert eventlog.backlog(tx)[0] == 25 - expected


def test_a_new_store_has_pushed_nothing(any_store: AnyStore) -> None:
    with any_store.read() as tx:
        assert eventlog.pushed_upto(tx) == 0
        assert eventlog.unpushed(tx, 10) == []
        assert eventlog.backlog(tx) == (0, None)
