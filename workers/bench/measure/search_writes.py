"""Measure what the search index's prefix indexes cost the writes that reindex an order.

Run: ``.venv/bin/python -m workers.bench.measure.search_writes [--orders 20000] [--writes
2000] [--rounds 2]``. For each round, two fresh SQLite stores are made in a temporary
folder, one with the shipped index (:data:`shared.store.sqlite_search.PREFIX_INDEX_CHARS`)
and one without prefix indexes, alternately, so a noisy minute hits both. In each: a bulk
load of ``--orders`` generated orders (as ``jobordre demo``), then ``--writes`` new orders
one per transaction, and ``--writes`` status changes one per transaction (each reindexes
its order: a contentless FTS5 row is deleted and inserted whole). Only the store's part of
a command is timed, so the ratio is the index's share at its largest; ``jobordre bench``
measures the commands end to end. Not a test: figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from shared import store
from shared.store import sqlite_search
from workers.bench.generator import Generator, load_orders


def _run(folder: Path, name: str, orders: int, writes: int) -> dict[str, Any]:
    path = folder / f"{name}.db"
    began = time.perf_counter()
    load_orders(path, orders, seed=3, progress=False)
    loaded_s = time.perf_counter() - began
    target = store.SqliteStore(path)
    generator = Generator(4)
    try:
        began = time.perf_counter()
        for order_id in range(orders + 1, orders + writes + 1):
            with target.write() as conn:
                store.insert_order(conn, generator.job_order(order_id))
        inserts_s = time.perf_counter() - began
        began = time.perf_counter()
        for order_id in range(1, writes + 1):
            with target.write() as conn:
                conn.execute(
                    "UPDATE orders SET status = CASE status WHEN 'inactivated' THEN 'processing'"
                    " ELSE 'inactivated' END WHERE id = ?",
                    [order_id],
                )
        changes_s = time.perf_counter() - began
        size = (
            target.connection()
            .execute("SELECT SUM(LENGTH(block)) FROM order_search_data")
            .fetchone()[0]
        )
    finally:
        target.close()
    return {
        "bulk_load_s": round(loaded_s, 2),
        "inserts_per_s": round(writes / inserts_s, 1),
        "status_changes_per_s": round(writes / changes_s, 1),
        "index_mb": round(int(size) / 1e6, 1),
    }


def main() -> None:
    """Print both stores' figures per round, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--writes", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    shipped = sqlite_search.PREFIX_INDEX_CHARS
    rounds = []
    with tempfile.TemporaryDirectory(prefix="jobordre-measure-") as folder:
        for number in range(args.rounds):
            figures: dict[str, Any] = {}
            for name, prefixes in (("without", ()), ("with", shipped)):
                sqlite_search.PREFIX_INDEX_CHARS = prefixes
                figures[f"{name}_prefix_indexes"] = _run(
                    Path(folder), f"{name}{number}", args.orders, args.writes
                )
            rounds.append(figures)
    sqlite_search.PREFIX_INDEX_CHARS = shipped
    print(json.dumps({"prefix_index_chars": list(shipped), "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
