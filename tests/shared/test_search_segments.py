"""A bulk-built search index is left as one FTS5 segment (sqlite_search.OPTIMIZE_SQL), so
the writers after a load or a rebuild do not pay for merging what it left behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shared import store
from shared.store import sqlite_search
from workers.bench.generator import load_orders

#: Orders of the loads here: several load transactions (workers.bench.generator.LOAD_BATCH).
ORDERS = 12_000


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's varint at ``at``: its value and the offset after it."""
    value = 0
    for index in range(9):
        byte = data[at]
        at += 1
        if index == 8:
            return (value << 8) | byte, at
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at
    raise AssertionError("unreachable")


def segments(path: Path) -> int:
    """Segments of the search index: from FTS5's structure record (row 10 of its data
    table: a 4-byte cookie, then the number of levels, then of segments)."""
    conn = sqlite3.connect(path)
    try:
        (record,) = conn.execute(
            f"SELECT block FROM {sqlite_search.SEARCH_TABLE}_data WHERE id = 10"
        ).fetchone()
    finally:
        conn.close()
    _levels, at = _varint(record, 4)
    count, _ = _varint(record, at)
    return count


def test_a_bulk_load_into_an_empty_store_leaves_one_segment(tmp_path: Path) -> None:
    path = tmp_path / "loaded.db"
    load_orders(path, ORDERS, seed=3, progress=False)
    assert segments(path) == 1


def test_a_small_load_into_a_larger_store_leaves_the_merging_to_fts5(tmp_path: Path) -> None:
    path = tmp_path / "grown.db"
    load_orders(path, ORDERS, seed=3, progress=False)
    load_orders(path, 5, seed=4, progress=False)
    assert segments(path) > 1, "a few orders do not rewrite the whole index"


@pytest.mark.parametrize(
    "loads",
    [pytest.param([ORDERS], id="one-load"), pytest.param([ORDERS, 5, 5], id="after-small-loads")],
)
def test_rebuilding_the_index_leaves_one_segment(tmp_path: Path, loads: list[int]) -> None:
    path = tmp_path / "rebuilt.db"
    for seed, count in enumerate(loads):
        load_orders(path, count, seed=seed, progress=False)
    target = store.SqliteStore(path)
    try:
        # As the migrations run it: outside a transaction (executescript commits).
        sqlite_search.create_index(target.connection().raw)
    finally:
        target.close()
    assert segments(path) == 1
