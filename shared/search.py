"""Searching job orders (S1) fast at a million orders: the index design and the query.

Why not the obvious query. ``orders_fts MATCH ? JOIN orders ... WHERE municipality = ? AND
status = ? ORDER BY rank`` makes SQLite find *every* order containing the words, fetch each
one's ``orders`` row to test the filters, and compute bm25 for all of them before it can
sort. At 1,000,000 orders a common word matches tens of thousands of rows: p95 ~100 ms
(FACTS.md), almost all of it random B-tree lookups for rows the filters then throw away.

The design:

* **Filters live inside the full-text index.** ``order_search`` is a contentless FTS5 table
  whose fourth column, ``tags``, holds one token per filter value: ``m751`` (municipality),
  ``sprocessing`` (status), ``jordinary`` (job type), ``e25313763`` (employer CVR). A
  search is then ONE FTS5 expression, ``tags : (m751 AND sprocessing) AND {title
  description occupation} : ("tømrer"*)``, which FTS5 answers by intersecting doclists in
  rowid order. No ``orders`` row is read for an order that does not match.
* **Ranking is bounded.** bm25 is computed for the newest :data:`RANK_WINDOW` matches
  only (FTS5 streams matches in descending rowid order and the ``LIMIT`` stops the scan),
  and the page is the best-ranked of those. When fewer orders match than the window — the
  normal case with a municipality filter — the order is exactly bm25's; otherwise older
  matches are reached by refining the search, not by ranking all of them.
* **LIMIT before join.** Only the page's ids are looked up in ``orders`` for their JSON.
* **The count stays exact**; it is a pure doclist intersection (no row lookups, no
  positions). :func:`search_orders` documents its cost.
* **Triggers keep the index in step** in the writer's own transaction, and reindex an
  order only when a searchable column or a filter column changed: an update of, say,
  ``positions`` touches no index.

Searches without text use the ``orders`` B-tree indexes (``orders_by_municipality`` etc.),
which already answer in well under a millisecond.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from shared.models import JobOrder

#: The FTS5 table of the search index.
SEARCH_TABLE = "order_search"
#: How many of the newest matching orders are ranked by bm25 (orders).
RANK_WINDOW = 1_000
#: bm25 weights of the columns title, description, occupation, tags: a word in the title
#: counts ten description words; the tags never score (they are filters).
BM25_WEIGHTS = (10.0, 1.0, 5.0, 0.0)
#: Filter name -> (the ``orders`` column, the token prefix in ``tags``).
TAGS: dict[str, str] = {
    "municipality": "m",
    "status": "s",
    "job_type": "j",
    "employer_cvr": "e",
}
#: The FTS5 tokenizer: case-folding and diacritics removed, so "Tomrer" finds "Tømrer"
#: where Unicode decomposes the letter (é, ü), and "ø" matches "Ø".
TOKENIZER = "unicode61 remove_diacritics 2"
#: Prefix lengths FTS5 keeps a ready doclist for (characters). A prefix query on a word of
#: such a length is one seekable doclist; on any other length FTS5 must first merge the
#: doclists of every term with that prefix, corpus-wide (~25 ms for a common word at 1M).
PREFIXES = "2 3 4 5 6 7 8 9 10 11 12"


#: Prefix of the compound token of municipality and status, e.g. ``x751processing``.
PLACE_STATUS = "x"


def _tags_sql(row: str) -> str:
    """SQL building the ``tags`` text of a row (``new`` or ``old`` in a trigger).

    Underscores are dropped because unicode61 splits tokens on them: ``closed_filled``
    becomes the single token ``sclosedfilled``. The compound ``x<kommunekode><status>``
    serves the commonest search, municipality and status together, with one short doclist
    (about 0.6 % of all orders) instead of intersecting ``m751`` with the huge
    ``sprocessing``: FTS5 reads a doclist whole to walk it newest first.
    """
    single = [f"'{prefix}' || replace({row}.{column}, '_', '')" for column, prefix in TAGS.items()]
    compound = f"'{PLACE_STATUS}' || {row}.municipality || replace({row}.status, '_', '')"
    return " || ' ' || ".join([*single, compound])


def _index_row_sql(row: str) -> str:
    return f"{row}.title, {row}.description, {row}.occupation, {_tags_sql(row)}"


def create_index(conn: sqlite3.Connection) -> None:
    """(Re)build the search index and its triggers; drop the old ``orders_fts``.

    Idempotent: the index is dropped and rebuilt from ``orders``, so a migration that
    crashed half-way is repaired by running it again.
    """
    changed = " OR ".join(
        f"old.{column} IS NOT new.{column}"
        for column in ("title", "description", "occupation", *TAGS)
    )
    conn.executescript(
        f"""
        DROP TRIGGER IF EXISTS orders_ai;
        DROP TRIGGER IF EXISTS orders_ad;
        DROP TRIGGER IF EXISTS orders_au;
        DROP TABLE IF EXISTS orders_fts;
        DROP TABLE IF EXISTS {SEARCH_TABLE};
        CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5 (
            title, description, occupation, tags,
            content = '', tokenize = '{TOKENIZER}', prefix = '{PREFIXES}'
        );
        INSERT INTO {SEARCH_TABLE} (rowid, title, description, occupation, tags)
            SELECT -id, {_index_row_sql("orders")} FROM orders;
        CREATE TRIGGER IF NOT EXISTS {SEARCH_TABLE}_insert AFTER INSERT ON orders BEGIN
            INSERT INTO {SEARCH_TABLE} (rowid, title, description, occupation, tags)
                VALUES (-new.id, {_index_row_sql("new")});
        END;
        -- A contentless table forgets a row only when told its indexed text again.
        CREATE TRIGGER IF NOT EXISTS {SEARCH_TABLE}_delete AFTER DELETE ON orders BEGIN
            INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}, rowid, title, description, occupation,
                tags) VALUES ('delete', -old.id, {_index_row_sql("old")});
        END;
        CREATE TRIGGER IF NOT EXISTS {SEARCH_TABLE}_update AFTER UPDATE ON orders
        WHEN {changed} BEGIN
            INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}, rowid, title, description, occupation,
                tags) VALUES ('delete', -old.id, {_index_row_sql("old")});
            INSERT INTO {SEARCH_TABLE} (rowid, title, description, occupation, tags)
                VALUES (-new.id, {_index_row_sql("new")});
        END;
        """  # noqa: S608 - names and SQL from this module's constants only
    )


def text_query(text: str) -> str:
    """Free text as an FTS5 expression: every word must occur, as a prefix.

    Words are quoted so that FTS5 syntax in the user's text (``AND``, ``-``, ``"``) is
    taken literally instead of failing the query. Empty if the text has no words.
    """
    words = [word.replace('"', "") for word in text.split()]
    return " ".join(f'"{word}"*' for word in words if word)


def _tag(name: str, value: str) -> str:
    # Values arrive validated (kommunekode, enum values, 8-digit CVR); dropping anything
    # else keeps a stray character from turning into FTS5 syntax.
    return TAGS[name] + "".join(ch for ch in value if ch.isalnum())


def match_expression(text: str, filters: dict[str, str]) -> str:
    """The one FTS5 expression for words plus filters; empty if there are no words."""
    words = text_query(text)
    if not words:
        return ""
    expression = f"{{title description occupation}} : ({words})"
    terms = {name: _tag(name, value) for name, value in filters.items()}
    if "municipality" in terms and "status" in terms:
        terms["municipality"] = PLACE_STATUS + terms["municipality"][1:] + terms.pop("status")[1:]
    if terms:
        tags = " AND ".join(f'"{term}"' for term in terms.values())
        expression = f"tags : ({tags}) AND {expression}"
    return expression


#: The text search: bm25 over the newest ``:window`` matches, then the page.
TEXT_PAGE_SQL = f"""
    SELECT id FROM (
        SELECT -rowid AS id, bm25({SEARCH_TABLE}, {", ".join(map(str, BM25_WEIGHTS))}) AS score
        FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :match
        ORDER BY rowid LIMIT :window
    ) ORDER BY score, id DESC LIMIT :limit OFFSET :offset
"""  # noqa: S608 - constants only
#: The number of orders matching a text search.
TEXT_COUNT_SQL = f"SELECT COUNT(*) FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :match"  # noqa: S608


def search_ids(
    conn: sqlite3.Connection, *, text: str | None, filters: dict[str, str], limit: int, offset: int
) -> tuple[int, list[int]]:
    """The total and the page of order ids, best first; the SQL part of a search.

    Unknown filter names raise ``KeyError``: only the columns of :data:`TAGS` filter.
    """
    for name in filters:
        if name not in TAGS:
            raise KeyError(f"no search filter {name!r}")
    match = match_expression(text or "", filters)
    if match:
        total = conn.execute(TEXT_COUNT_SQL, {"match": match}).fetchone()[0]
        rows = conn.execute(
            TEXT_PAGE_SQL,
            {
                "match": match,
                "window": max(RANK_WINDOW, offset + limit),
                "limit": limit,
                "offset": offset,
            },
        ).fetchall()
        return int(total), [int(row[0]) for row in rows]
    where = " AND ".join(f"{column} = ?" for column in filters) or "1"
    params: list[Any] = list(filters.values())
    total = conn.execute(f"SELECT COUNT(*) FROM orders WHERE {where}", params).fetchone()[0]  # noqa: S608
    rows = conn.execute(
        f"SELECT id FROM orders WHERE {where} ORDER BY updated_at DESC, id DESC"  # noqa: S608
        " LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return int(total), [int(row[0]) for row in rows]


def search_orders(
    conn: sqlite3.Connection,
    *,
    text: str | None,
    filters: dict[str, str],
    limit: int,
    offset: int,
) -> tuple[int, list[JobOrder]]:
    """Orders matching ``text`` (every word as a prefix) and the filters: (total, page).

    With text the page is ordered by bm25 (title words weigh most) among the newest
    :data:`RANK_WINDOW` matches, newest first on ties; without text, most recently
    updated first. ``total`` is exact.
    """
    total, ids = search_ids(conn, text=text, filters=filters, limit=limit, offset=offset)
    if not ids:
        return total, []
    marks = ", ".join("?" for _ in ids)
    docs = {
        int(row[0]): row[1]
        for row in conn.execute(f"SELECT id, doc FROM orders WHERE id IN ({marks})", ids)  # noqa: S608
    }
    return total, [JobOrder.model_validate_json(docs[order_id]) for order_id in ids]
