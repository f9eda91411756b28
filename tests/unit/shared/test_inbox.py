"""Reading the event log: the inbox's cost is bounded per request, and cursors of
another log are never taken at their word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared import eventlog, inbox
from shared.commands import CommandKind
from shared.events import Cursor
from shared.foundation import Foundation
from shared.store import SqliteStore as Store
from tests.shared.test_foundation import AKASSE, JOBCENTRE, count, ok, register

K = CommandKind
PLACEMENTS = 30


@pytest.fixture
def foundation(tmp_path: Path) -> Foundation:
    return Foundation(Store(tmp_path / "store.db"))


def cpr(i: int) -> str:
    return f"010190{i:04d}"


def place_many(f: Foundation, n: int = PLACEMENTS) -> int:
    order = register(f)
    for i in range(n):
        ok(f, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": cpr(i)})
    return int(order["id"])


def test_a_placement_event_carries_its_change_not_the_whole_log(foundation: Foundation) -> None:
    order_id = place_many(foundation)
    page = ok(foundation, JOBCENTRE, K.INBOX, {"limit": 1000})
    logs = [e for e in page["events"] if e["type"] == "placement_log_updated"]
    assert len(logs) == PLACEMENTS
    for i, event in enumerate(logs):
        assert [p["cpr"] for p in event["log"]["placements"]] == [cpr(i)]
        assert [e["placement_id"] for e in event["log"]["entries"]] == [
            event["placements"][0]["placement_id"]
        ]
        assert event["full_log"] == {"command": "placement log", "order_id": order_id}
    # The whole log stays one query away.
    whole = ok(foundation, JOBCENTRE, K.PLACEMENT_LOG, {"order_id": order_id})
    assert len(whole["placements"]) == PLACEMENTS


def test_a_read_writes_one_access_row_per_person(foundation: Foundation) -> None:
    place_many(foundation)
    before = count(foundation, "access_log")
    ok(foundation, JOBCENTRE, K.INBOX, {"limit": 1000})
    assert count(foundation, "access_log") - before == PLACEMENTS  # was 465: 1 + 2 + ... + 30


def test_a_page_ends_by_size_and_the_cursor_goes_on_from_there(
    foundation: Foundation, monkeypatch: pytest.MonkeyPatch
) -> None:
    place_many(foundation, 10)
    everything = ok(foundation, AKASSE, K.INBOX, {"limit": 1000})["events"]
    one = max(len(json.dumps(e, ensure_ascii=False).encode()) for e in everything)
    monkeypatch.setattr(inbox, "PAGE_MAX_BYTES", 3 * one)
    seen, since = [], "0"
    while True:
        page = ok(foundation, AKASSE, K.INBOX, {"since": since, "limit": 1000})
        if not page["events"]:
            break
        assert len(page["events"]) <= 3
        seen += [e["seq"] for e in page["events"]]
        since = page["cursor"]
    assert seen == [e["seq"] for e in everything]


def test_one_event_larger_than_a_page_still_comes(
    foundation: Foundation, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(foundation)
    monkeypatch.setattr(inbox, "PAGE_MAX_BYTES", 10)
    assert len(ok(foundation, AKASSE, K.INBOX, {})["events"]) == 1


def _restored(f: Foundation) -> tuple[str, str]:
    """Three events, then the third is lost and the log gets a new epoch at event 2 (as
    after a restore from a backup); returns the old and the new epoch."""
    order = register(f)
    for status in ("inactivated", "processing"):
        ok(f, JOBCENTRE, K.CHANGE_ORDER_STATUS, {"order_id": order["id"], "status": status})
    with f.store.write() as conn:
        old = eventlog.current_epoch(conn)
        conn.execute("DELETE FROM event_audience WHERE seq = 3")
        conn.execute("DELETE FROM events WHERE seq = 3")
        conn.execute("UPDATE sqlite_sequence SET seq = 2 WHERE name = 'events'")
        new = eventlog.start_epoch(conn, "2026-12-01T00:00:00+00:00", replacing=old)
    assert new is not None
    return old, new


@pytest.mark.parametrize(
    ("given", "from_seq"),
    [
        pytest.param("{new}:1", 1, id="this-epoch"),
        pytest.param("{old}:1", 1, id="an-earlier-epoch-before-they-part"),
        pytest.param("{old}:3", 2, id="an-earlier-epoch-after-they-part-counts-up-to-there"),
        pytest.param("abcdef:2", 0, id="another-log-counts-for-nothing"),
        pytest.param("2", 2, id="the-old-format-is-read"),
        pytest.param("99", 3, id="nothing-counts-beyond-the-end"),
    ],
)
def test_cursors_are_resolved_in_the_log_as_it_is(
    foundation: Foundation, given: str, from_seq: int
) -> None:
    old, new = _restored(foundation)
    ok(foundation, JOBCENTRE, K.CHANGE_ORDER_STATUS, {"order_id": 1, "status": "inactivated"})
    since = given.format(old=old, new=new)
    page = ok(foundation, JOBCENTRE, K.INBOX, {"since": since})
    assert page["from_seq"] == from_seq
    assert page["head"] == f"{new}:3"
    assert all(Cursor.parse(e["cursor"]).epoch in (old, new) for e in page["events"])


@pytest.mark.parametrize(
    "since",
    [
        pytest.param("x:1", id="not-hex"),
        pytest.param("-1", id="negative"),
        pytest.param("1:2:3", id="two-colons"),
    ],
)
def test_a_malformed_cursor_is_a_validation_error_naming_since(
    foundation: Foundation, since: str
) -> None:
    from tests.shared.test_foundation import call

    reply = call(foundation, JOBCENTRE, K.INBOX, {"since": since})
    assert reply["error"]["code"] == "validation_error"
    assert reply["error"].get("field") == "since"
