"""Measure text search on an existing store with the bench's generated query mix.

Run: ``.venv/bin/python -m workers.bench.measure.search --db /tmp/big.db [--queries 500]
[--seed 7] [--rounds 3] [--slowest 10]``. The store is opened as the workers open it
(so pending migrations run first, and their time is printed), the first 50 queries warm
the page cache, then every query of ``jobordre bench``'s mix (:func:`workers.bench.harness.
_search_queries`, same seed: same queries) is timed through :func:`shared.search.search_orders`
in a read transaction, as the bench does. With ``--rounds`` > 1 each round is timed and
reported on its own, so a noisy minute on a shared machine shows as one odd round. Not a
test: figures are printed, never asserted; it spares reloading a million orders for every
change to the search.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from shared import search
from shared.store import SqliteStore
from workers.bench.harness import BenchConfig, _ms, _search_queries


def main() -> None:
    """Print search p50/p95/p99 (ms) per round and the slowest queries, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--slowest", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    target = SqliteStore(args.db)
    opened_s = time.perf_counter() - started
    queries = _search_queries(BenchConfig(queries=args.queries, seed=args.seed))
    conn = target.connection()
    try:
        for text, filters in queries[:50]:
            search.search_orders(conn, text=text, filters=filters, limit=20, offset=0)
        rounds = []
        timed: list[tuple[float, str, int]] = []
        for _ in range(args.rounds):
            samples: list[float] = []
            totals: list[int] = []
            for text, filters in queries:
                began = time.perf_counter()
                conn.execute("BEGIN")
                total, _page = search.search_orders(
                    conn, text=text, filters=filters, limit=20, offset=0
                )
                conn.execute("COMMIT")
                elapsed = time.perf_counter() - began
                samples.append(elapsed)
                totals.append(total)
                timed.append((elapsed * 1000, f"{text} @{filters['municipality']}", total))
            rounds.append({**_ms(samples), "median_total": statistics.median(totals)})
    finally:
        target.close()
    timed.sort(reverse=True)
    print(
        json.dumps(
            {
                "open_and_migrate_s": round(opened_s, 2),
                "rounds": rounds,
                "slowest": [
                    {"ms": round(ms, 1), "query": query, "total": total}
                    for ms, query, total in timed[: args.slowest]
                ],
            },
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
