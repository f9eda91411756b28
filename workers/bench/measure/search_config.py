"""Measure which PostgreSQL text configuration finds what a caseworker types.

Run: ``.venv/bin/python -m workers.bench.measure.search_config [--orders 5000]``. It
generates a store, copies it into a private PostgreSQL cluster, and for each query of
:data:`TYPED` (spellings a caseworker types: without Danish letters, plural, inflected,
accents left out) counts the orders each candidate finds against the *intended* matches:
orders containing every intended word as a prefix, decided in Python. Candidates: SQLite's
FTS5 (as shipped), ``simple`` + ``unaccent`` (as shipped on PostgreSQL), ``danish``
(stemming, no unaccent) and ``danish`` + ``unaccent``. Not a test: figures are reported.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from shared import search
from shared.store import SqliteStore, open_url
from shared.store.copy import copy_store
from tests.conftest import free_port
from tests.postgres_cluster import start_cluster
from workers.bench.generator import load_orders

#: (what the caseworker types, what they mean).
TYPED: list[tuple[str, str]] = [
    ("tømrer", "tømrer"),
    ("tomrer", "tømrer"),
    ("tømrere", "tømrer"),
    ("paedagog", "pædagog"),
    ("pædagoger", "pædagog"),
    ("chauffor", "chauffør"),
    ("rengoring", "rengøring"),
    ("rengøringsassistenter", "rengøringsassistent"),
    ("sosu", "sosu"),
    ("sygeplejersker", "sygeplejerske"),
    ("cafe", "café"),
    ("kok", "kok"),
    ("kokke", "kok"),
    ("lager", "lager"),
    ("elektrikere", "elektriker"),
    ("butiksassistent aarhus", "butiksassistent aarhus"),
]

_ALL = "title || ' ' || occupation || ' ' || description"
#: Each candidate's document vector and query (``%s`` = the typed words, space-separated).
CANDIDATES: dict[str, tuple[str, str]] = {
    "simple+unaccent": ("search", "jobordre_prefix_query(%s)"),
    "danish": (
        f"to_tsvector('danish', {_ALL})",
        "to_tsquery('danish', regexp_replace(btrim(lower(%s)), '\\s+', ':* & ', 'g') || ':*')",
    ),
    "danish+unaccent": (
        f"to_tsvector('danish', jobordre_fold({_ALL}))",
        "to_tsquery('danish', regexp_replace(btrim(jobordre_fold(%s)), '\\s+', ':* & ', 'g')"
        " || ':*')",
    ),
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _intended(rows: list[Any], meant: str) -> set[int]:
    wanted = re.findall(r"[^\W_]+", _fold(meant))
    found = set()
    for row in rows:
        tokens = re.findall(r"[^\W_]+", _fold(f"{row[1]} {row[2]} {row[3]}"))
        if all(any(token.startswith(word) for token in tokens) for word in wanted):
            found.add(int(row[0]))
    return found


def main() -> None:
    """Print one JSON document: per query and candidate, found / intended / recall."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=5_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jobordre-config-"))
    load_orders(work / "s.db", args.orders, seed=7, today=date(2026, 11, 26), progress=False)
    sqlite = SqliteStore(work / "s.db")
    cluster = start_cluster(free_port())
    try:
        url = cluster.fresh_database()
        target = open_url(url)
        copy_store(sqlite, target)
        target.close()
        rows = (
            sqlite.connection()
            .execute("SELECT id, title, occupation, description FROM orders")
            .fetchall()
        )
        results: dict[str, Any] = {}
        totals: dict[str, list[int]] = {name: [0, 0, 0] for name in ["sqlite", *CANDIDATES]}
        with psycopg.connect(url, autocommit=True) as conn:
            for typed, meant in TYPED:
                intended = _intended(rows, meant)
                words = search.words(typed)
                found: dict[str, set[int]] = {
                    "sqlite": set(
                        search.search_ids(
                            sqlite.connection(), text=typed, filters={}, limit=10**6, offset=0
                        )[1]
                    )
                }
                for name, (vector, query) in CANDIDATES.items():
                    # Not ``rows``: the orders' rows are the next query's reference.
                    matched = conn.execute(
                        f"SELECT id FROM orders WHERE {vector} @@ {query}",  # noqa: S608 (constants)
                        (" ".join(words),),
                    ).fetchall()
                    found[name] = {int(row[0]) for row in matched}
                results[typed] = {"intended": len(intended)}
                for name, ids in found.items():
                    hits = len(ids & intended)
                    results[typed][name] = {"found": len(ids), "intended_found": hits}
                    totals[name][0] += hits
                    totals[name][1] += len(intended)
                    totals[name][2] += len(ids - intended)
        summary = {
            name: {
                "recall": round(hits / max(wanted, 1), 3),
                "unintended": extra,
            }
            for name, (hits, wanted, extra) in totals.items()
        }
        print(json.dumps({"orders": args.orders, "summary": summary, "queries": results}, indent=1))
    finally:
        sqlite.close()
        cluster.stop()


if __name__ == "__main__":
    main()
