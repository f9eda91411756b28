"""SQLite's search (S1, semantics in :mod:`shared.search`) fast at a million orders: FTS5.

Why not the obvious query. ``orders_fts MATCH ? JOIN orders ... WHERE municipality = ? AND
status = ? ORDER BY rank`` makes SQLite find *every* order containing the words, fetch each
one's ``orders`` row to test the filters, and compute bm25 for all of them before it can
sort. At 1,000,000 orders a common word matches tens of thousands of rows: p95 ~100 ms
(FACTS.md), almost all of it random B-tree lookups for rows the filters then throw away.

The design:

* **Filters live inside the full-text index.** ``order_search`` is a contentless FTS5 table
  whose fourth column, ``tags``, holds one token per filter value (municipality, status,
  job type, employer CVR), plus one for the commonest pair, municipality and status
  together; each token is two characters (:mod:`.search_tags`). A search is then ONE FTS5
  expression, ``tags : ("<751 processing>") AND {title description occupation} :
  ("tømrer"*)``, which FTS5 answers by intersecting doclists, seeking in the long ones.
  No ``orders`` row is read for an order that does not match.
* **Word positions are kept** (``detail=full``), though no query is a phrase
  (:func:`words` splits ``SOSU-assistent`` into two required words): bm25 needs them on a
  contentless table. With ``detail=column`` (the index up to migration 10) SQLite 3.40's
  bm25 scored every match 0, so pages came newest first whatever the words matched.
* **Prefix indexes for the lengths caseworkers type** (:data:`PREFIX_INDEX_CHARS`): a
  word of such a length is one ready doclist, so FTS5 seeks in it instead of merging the
  doclists of every term it starts across the corpus, once for the match and once more for
  bm25's count of the orders containing it. Same matches, same scores; the price is a
  larger index and dearer indexed writes (docs/performance.md).
* **Newest first is ascending rowid.** The index's rowid is minus the order id, so FTS5
  streams matches newest first in its cheap direction (walking a doclist backwards makes
  FTS5 load it whole).
* **Ranking is bounded.** bm25 is computed for the newest :data:`RANK_WINDOW` matches
  only (the ``LIMIT`` stops the stream), and the page is the best-ranked of those. When
  fewer orders match than the window — the normal case with a municipality filter — the
  order is exactly bm25's; otherwise older matches are reached by refining the search (or
  paging: the window grows to cover ``offset + limit``).
* **LIMIT before join.** Only the page's ids are looked up in ``orders`` for their JSON.
* **The count stays exact**, and is usually free: a window that is not full holds every
  match. Only a full window costs a count query, a pure doclist intersection that starts
  after the window's oldest match, so it walks only the older ones.
* **Triggers keep the index in step** in the writer's own transaction, and reindex an
  order only when a searchable column or a filter column changed: an update of, say,
  ``positions`` touches no index.
* **A status change rewrites two tags, not the order's row.** Reindexing a whole row
  tokenizes its title and description twice and writes every word under each prefix
  length: most of what a status change cost in the store. The tags start with
  :data:`TAG_MARK`, which no word of an order's text contains, so no word shares a token,
  nor a prefix, with a tag, and FTS5 entries are per token: deleting just the old status
  tags and inserting the new ones leaves the index exactly as a full reindex would. What
  FTS5's ``delete`` also drops, the row's column sizes that bm25 reads, is kept aside in
  ``order_search_sizes`` and put back. An order whose text does contain the mark is
  reindexed whole, so the shortcut is never inexact. Tags are two characters, too short
  for any prefix index, so each costs one index entry, not ten.

Searches without text use the ``orders`` B-tree indexes (``orders_by_municipality`` etc.),
which already answer in well under a millisecond.
"""

from __future__ import annotations

import sqlite3

from shared.store.search_tags import SPELLED, TAG_MARK, status_tags_sql, tag_tokens, tags_sql

#: The FTS5 table of the search index.
SEARCH_TABLE = "order_search"
#: How many of the newest matching orders are ranked by bm25 (orders); PostgreSQL's search
#: ranks the same window (:mod:`.postgres_search`).
RANK_WINDOW = 1_000
#: bm25 weights of the columns title, description, occupation, tags: a word in the title
#: counts ten description words; the tags never score (they are filters).
BM25_WEIGHTS = (10.0, 1.0, 5.0, 0.0)
#: Prefix lengths (characters) FTS5 keeps a prefix index for: a query word of one of these
#: lengths reads one doclist instead of merging those of every term it starts (module
#: docstring). The common words caseworkers type are 3 to 11 characters long; 2 would
#: index almost every token twice more for the few two-letter words, and longer words
#: start few terms, so their merge is short.
PREFIX_INDEX_CHARS = tuple(range(3, 12))
#: The FTS5 tokenizer: case-folding and diacritics removed, so "Tomrer" finds "Tømrer"
#: where Unicode decomposes the letter (é, ü), and "ø" matches "Ø".
TOKENIZER = "unicode61 remove_diacritics 2"


#: Merges the whole index into one segment (FTS5's ``optimize``). A bulk build leaves
#: segments of many sizes, some of them half-way through an incremental merge that the
#: next writers' commits then finish a slice at a time: at a million orders that added
#: to each status change for the first thousands of them (docs/performance.md). One
#: segment also answers searches a little faster.
OPTIMIZE_SQL = f"INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}) VALUES ('optimize')"  # noqa: S608
#: The orders columns whose change rewrites an order's whole row in the index.
_REINDEXED = ("title", "description", "occupation", *(name for name in SPELLED if name != "status"))


def _index_row_sql(row: str) -> str:
    return f"{row}.title, {row}.description, {row}.occupation, {tags_sql(row)}"


def _status_only_sql() -> str:
    """An UPDATE trigger's condition: only the status of the indexed columns changed, and
    the text is free of :data:`TAG_MARK`, so rewriting the status tags is exact."""
    others = " OR ".join(f"old.{column} IS NOT new.{column}" for column in _REINDEXED)
    text = "old.title || old.description || old.occupation"
    # IS, not =: never NULL, so the whole-row trigger's NOT of it is never NULL either.
    return f"old.status IS NOT new.status AND NOT ({others}) AND instr({text}, '{TAG_MARK}') IS 0"


def create_index(conn: sqlite3.Connection) -> None:
    """(Re)build the search index and its triggers; drop the old ``orders_fts``.

    Idempotent: the index is dropped and rebuilt from ``orders``, so a migration that
    crashed half-way is repaired by running it again. A change to the index's shape needs
    a new migration in :mod:`shared.schema` calling this again, as v4 does.
    """
    changed = " OR ".join(f"old.{column} IS NOT new.{column}" for column in (*_REINDEXED, "status"))
    status_only = _status_only_sql()
    lengths = " ".join(map(str, PREFIX_INDEX_CHARS))
    prefixes = f", prefix = '{lengths}'" if lengths else ""
    conn.executescript(
        f"""
        DROP TRIGGER IF EXISTS orders_ai;
        DROP TRIGGER IF EXISTS orders_ad;
        DROP TRIGGER IF EXISTS orders_au;
        DROP TRIGGER IF EXISTS {SEARCH_TABLE}_insert;
        DROP TRIGGER IF EXISTS {SEARCH_TABLE}_delete;
        DROP TRIGGER IF EXISTS {SEARCH_TABLE}_update;
        DROP TRIGGER IF EXISTS {SEARCH_TABLE}_status;
        DROP TABLE IF EXISTS orders_fts;
        DROP TABLE IF EXISTS {SEARCH_TABLE};
        CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5 (
            title, description, occupation, tags,
            content = '', tokenize = '{TOKENIZER}', detail = full{prefixes}
        );
        INSERT INTO {SEARCH_TABLE} (rowid, title, description, occupation, tags)
            SELECT -id, {_index_row_sql("orders")} FROM orders;
        {OPTIMIZE_SQL};
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
        WHEN ({changed}) AND NOT ({status_only}) BEGIN
            INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}, rowid, title, description, occupation,
                tags) VALUES ('delete', -old.id, {_index_row_sql("old")});
            INSERT INTO {SEARCH_TABLE} (rowid, title, description, occupation, tags)
                VALUES (-new.id, {_index_row_sql("new")});
        END;
        -- A 'delete' drops the row's column sizes (bm25 reads them) with the tokens it
        -- names; the insert that follows names only tags. The sizes are kept aside and put
        -- back: the status tags are swapped one for one, so they are still right.
        CREATE TABLE IF NOT EXISTS {SEARCH_TABLE}_sizes (id INTEGER PRIMARY KEY, sz BLOB);
        CREATE TRIGGER IF NOT EXISTS {SEARCH_TABLE}_status AFTER UPDATE ON orders
        WHEN {status_only} BEGIN
            INSERT OR REPLACE INTO {SEARCH_TABLE}_sizes (id, sz)
                SELECT id, sz FROM {SEARCH_TABLE}_docsize WHERE id = -old.id;
            INSERT INTO {SEARCH_TABLE} ({SEARCH_TABLE}, rowid, title, description, occupation,
                tags) VALUES ('delete', -old.id, '', '', '', {status_tags_sql("old")});
            INSERT INTO {SEARCH_TABLE} (rowid, title, description, occupation, tags)
                VALUES (-new.id, '', '', '', {status_tags_sql("new")});
            UPDATE {SEARCH_TABLE}_docsize
                SET sz = (SELECT sz FROM {SEARCH_TABLE}_sizes WHERE id = -old.id)
                WHERE id = -old.id;
            DELETE FROM {SEARCH_TABLE}_sizes WHERE id = -old.id;
        END;
        """  # noqa: S608 - names and SQL from this module's constants only
    )


def text_query(words: list[str]) -> str:
    """Words (:func:`shared.search.words`) as an FTS5 expression: each must occur, as a prefix.

    Words are split where the tokenizer splits them (``SOSU-assistent`` is two words, both
    required) and quoted, so FTS5 syntax in the user's text (``AND``, ``-``, ``"``) is
    taken literally. Empty if the text has no words.
    """
    return " ".join(f'"{word}"*' for word in words)


def match_expression(words: list[str], filters: dict[str, str]) -> str:
    """The one FTS5 expression for words plus filters; empty if there are no words."""
    query = text_query(words)
    if not query:
        return ""
    expression = f"{{title description occupation}} : ({query})"
    tokens = tag_tokens(filters)
    if tokens:
        tags = " AND ".join(f'"{token}"' for token in tokens)
        expression = f"tags : ({tags}) AND {expression}"
    return expression


#: The text search: the newest ``:window`` matches with their bm25 score (lower is better).
TEXT_WINDOW_SQL = f"""
    SELECT -rowid AS id, bm25({SEARCH_TABLE}, {", ".join(map(str, BM25_WEIGHTS))}) AS score
    FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :match
    ORDER BY rowid LIMIT :window
"""  # noqa: S608 - constants only
#: The number of orders matching a text search that are older than the window (rowid
#: ``:after`` is the window's oldest): FTS5 starts the walk there, so the window's matches
#: are not walked again.
TEXT_COUNT_SQL = (
    f"SELECT COUNT(*) FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH :match AND rowid > :after"  # noqa: S608
)


def search_ids(
    conn: sqlite3.Connection, *, words: list[str], filters: dict[str, str], limit: int, offset: int
) -> tuple[int, list[int]]:
    """The total and the page of order ids, best first; the SQL part of a search.

    A text search is usually ONE FTS5 query: the window of newest matches comes back with
    scores, and when it is not full it holds every match, so its length is the total. Only
    a full window costs a second query, counting the matches older than the window.
    """
    match = match_expression(words, filters)
    window = max(RANK_WINDOW, offset + limit)
    scored = conn.execute(TEXT_WINDOW_SQL, {"match": match, "window": window}).fetchall()
    if len(scored) < window:
        total = len(scored)
    else:
        # The window is the newest matches, ascending rowid: its last row is the oldest.
        after = -int(scored[-1][0])
        total = (
            len(scored)
            + conn.execute(TEXT_COUNT_SQL, {"match": match, "after": after}).fetchone()[0]
        )
    # Best score first; equal scores newest first.
    scored.sort(key=lambda row: (row[1], -row[0]))
    return int(total), [int(row[0]) for row in scored[offset : offset + limit]]
