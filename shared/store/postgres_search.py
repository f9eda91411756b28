"""PostgreSQL's search (S1, semantics in :mod:`shared.search`): tsvector + GIN.

* **Tokens as SQLite makes them.** The indexed text is folded by ``unaccent`` and lower
  case, and every run of characters that are not letters or digits becomes a space before
  PostgreSQL's parser sees it, so ``SOSU-assistent``, ``www.firma.dk`` and ``closed_filled``
  split where FTS5's unicode61 splits them (PostgreSQL's parser alone keeps hyphenated words,
  host names and e-mail addresses whole). The ``simple`` configuration: no stemming and no
  stop words, so every word the caseworker types is a prefix of a word in the order
  (docs/scaling-out.md has the measurement against ``danish``).
* **A stored generated column** ``orders.search`` with weights title A, occupation B,
  description D, and a GIN index on it; PostgreSQL keeps it in step in the writer's own
  transaction, as SQLite's triggers do.
* **Filters are B-tree columns**: the planner combines the GIN match with
  ``orders_by_municipality`` (bitmap AND) or filters the matches.
* **Ranking**: ``ts_rank`` with weights 1.0 (title), 0.5 (occupation), 0.1 (description):
  SQLite's bm25 weights 10 : 5 : 1; equal scores newest first. The total is exact.

``unaccent`` folds more than unicode61 does: ``ø``, ``æ``, ``å`` become ``o``, ``ae``,
``a`` (unicode61 keeps them, having no Unicode decomposition), so on PostgreSQL ``tomrer``
also finds "Tømrer". What SQLite finds, PostgreSQL finds too.
"""

from __future__ import annotations

from typing import Any

import psycopg

from shared.search import check_words

#: The text-search configuration: no stemming, no stop words.
CONFIG = "simple"
#: ts_rank weights of the classes {D, C, B, A}: description, (unused), occupation, title.
RANK_WEIGHTS = "{0.1, 0.0, 0.5, 1.0}"

#: Migration 3: the unaccent extension (trusted: a database owner may create it), the
#: folding function (IMMUTABLE, as a generated column requires), the column and its index.
CREATE_INDEX_SQL = f"""
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE OR REPLACE FUNCTION jobordre_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN regexp_replace(lower(public.unaccent('public.unaccent'::regdictionary, $1)),
                          '[^[:alnum:]]+', ' ', 'g');
ALTER TABLE orders ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('{CONFIG}', jobordre_fold(title)), 'A')
    || setweight(to_tsvector('{CONFIG}', jobordre_fold(occupation)), 'B')
    || setweight(to_tsvector('{CONFIG}', jobordre_fold(description)), 'D')
) STORED;
CREATE INDEX IF NOT EXISTS orders_search ON orders USING gin (search);
-- Every word of the query, folded like the text, as a prefix; all required.
CREATE OR REPLACE FUNCTION jobordre_prefix_query(text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT to_tsquery('{CONFIG}', string_agg(quote_literal(word) || ':*', ' & '))
            FROM regexp_split_to_table(btrim(jobordre_fold($1)), ' +') AS word
            WHERE word <> '');
"""  # noqa: S608 - constants only


def _where(filters: dict[str, str]) -> tuple[str, list[Any]]:
    clauses = ["search @@ q"]
    params: list[Any] = []
    for column, value in filters.items():
        clauses.append(f"{column} = %s")
        params.append(value)
    return " AND ".join(clauses), params


#: The query's words as :data:`CREATE_INDEX_SQL`'s prefix query folds and splits them.
FOLDED_WORDS_SQL = (
    "SELECT word FROM regexp_split_to_table(btrim(jobordre_fold(%s)), ' +') AS word"
    " WHERE word <> ''"
)

#: The query's words folded in SQL exactly as the indexed text is, each a prefix.
_FROM = "FROM orders, jobordre_prefix_query(%s) AS q"


def search_ids(
    conn: psycopg.Connection[Any],
    *,
    words: list[str],
    filters: dict[str, str],
    limit: int,
    offset: int,
) -> tuple[int, list[int]]:
    """(exact total, page of ids): best ``ts_rank`` first, newest first on ties.

    ``words`` are runs of letters and digits (:func:`shared.search.words`).
    """
    where, params = _where(filters)
    text = " ".join(words)
    # unaccent may fold a word into shorter ones (ŉ is 'n): each is a prefix to merge.
    check_words([row[0] for row in conn.execute(FOLDED_WORDS_SQL, [text])], folded=True)
    total = conn.execute(
        f"SELECT COUNT(*) {_FROM} WHERE {where}",
        [text, *params],
    ).fetchone()
    rows = conn.execute(
        f"SELECT id, ts_rank('{RANK_WEIGHTS}', search, q) AS score {_FROM}"
        f" WHERE {where} ORDER BY score DESC, id DESC LIMIT %s OFFSET %s",
        [text, *params, limit, offset],
    ).fetchall()
    return int(total[0]) if total else 0, [int(row[0]) for row in rows]
