"""Measure text search on PostgreSQL with the bench's query mix, on a big generated store.

Run: ``.venv/bin/python -m workers.bench.measure.search_postgres --db /tmp/big.db [--orders
1000000] [--queries 500] [--seed 7]``. ``--db`` is a SQLite store made by ``jobordre demo``
(or :func:`workers.bench.generator.load_orders`) with the bench's seed (7), so the queries find
what they find there. A private PostgreSQL cluster on a free loopback port gets a migrated
database; the first ``--orders`` orders are COPYed into ``orders`` with the GIN index
dropped and built again afterwards, then ANALYZEd (``jobordre store copy`` does the same,
and copies and verifies every table: use it for a whole store). Only the
``orders`` table matters to search (its ``search`` vector is computed by the COPY, the
generated column being migration 16's). The figures are those of ``jobordre bench`` on
PostgreSQL (:func:`workers.bench.harness.measure_search_postgres`): jobordre's search
through the store, and its SQL sent directly. Not a test: figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path

import psycopg

from shared.store import open_url
from tests.conftest import free_port
from tests.postgres_cluster import start_cluster
from workers.bench.harness import BenchConfig, measure_search_postgres

#: The ``orders`` columns both engines store (PostgreSQL adds the generated ``search``).
COLUMNS = (
    "id, status, municipality, job_type, employer_cvr, placement_deadline, version,"
    " updated_at, title, description, occupation, doc"
)


def load(source: Path, url: str, orders: int) -> dict[str, float]:
    """COPY the first ``orders`` orders of the SQLite store into ``url``; seconds per step."""
    seconds: dict[str, float] = {}
    lite = sqlite3.connect(source)
    with psycopg.connect(url, autocommit=True) as conn:
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_search'"
        ).fetchone()
        if index is None:
            raise SystemExit("the store has no orders_search index to build again")
        conn.execute("DROP INDEX orders_search")
        began = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(f"COPY orders ({COLUMNS}) FROM STDIN") as copy:
            for row in lite.execute(
                f"SELECT {COLUMNS} FROM orders WHERE id <= ? ORDER BY id",  # noqa: S608 (a constant)
                [orders],
            ):
                copy.write_row(row)
        seconds["copy_s"] = time.perf_counter() - began
        began = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute(index[0])
        seconds["gin_index_s"] = time.perf_counter() - began
        began = time.perf_counter()
        conn.execute("VACUUM ANALYZE orders")
        seconds["vacuum_analyze_s"] = time.perf_counter() - began
    lite.close()
    return {name: round(value, 1) for name, value in seconds.items()}


def main() -> None:
    """Print the load's and the searches' figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cluster = start_cluster(free_port())
    try:
        url = cluster.fresh_database()
        open_url(url).close()  # migrated
        loaded = load(args.db, url, args.orders)
        config = BenchConfig(queries=args.queries, seed=args.seed, database_url=url)
        searched = measure_search_postgres(url, config)
        with psycopg.connect(url) as conn:
            sizes = conn.execute(
                "SELECT pg_relation_size('orders_search'), pg_total_relation_size('orders'),"
                " (SELECT COUNT(*) FROM orders), current_setting('shared_buffers')"
            ).fetchone()
    finally:
        cluster.stop()
    assert sizes is not None
    print(
        json.dumps(
            {
                "orders": sizes[2],
                "load": loaded,
                "gin_index_mb": round(sizes[0] / 1e6, 1),
                "orders_total_mb": round(sizes[1] / 1e6, 1),
                # The tail depends on it: with the test cluster's few, every row a search
                # reads comes from the OS page cache (docs/performance.md).
                "shared_buffers": sizes[3],
                "search": searched,
            },
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
