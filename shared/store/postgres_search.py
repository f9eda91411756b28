"""PostgreSQL's search (S1, semantics in :mod:`shared.search`): tsvector + GIN, with the
filters inside the index and the ranking bounded as SQLite's (:mod:`.sqlite_search`).

Contract: :func:`search_ids` returns the exact total and the page of the newest
:data:`.sqlite_search.RANK_WINDOW` matches (the window grown to cover ``offset + limit``),
best ``ts_rank`` first, newest first on equal scores; what SQLite finds, PostgreSQL finds.

* **Tokens as SQLite makes them.** The indexed text is folded by ``unaccent`` and lower
  case, and every run of characters that are not letters or digits becomes a space before
  PostgreSQL's parser sees it, so ``SOSU-assistent``, ``www.firma.dk`` and ``closed_filled``
  split where FTS5's unicode61 splits them (PostgreSQL's parser alone keeps hyphenated words,
  host names and e-mail addresses whole). The ``simple`` configuration: no stemming and no
  stop words, so every word the caseworker types is a prefix of a word in the order
  (docs/scaling-out.md has the measurement against ``danish``).
* **A stored column** ``orders.search`` (``jobordre_search_vector``, migration 16, its
  function written out by migration 17) with a GIN index, kept by triggers in the writer's
  own transaction, as SQLite's are (a generated column until migration 18: a change of
  place or status now takes the words from the stored vector, :data:`SEARCH_VECTOR_MAINTAINED_SQL`);
  a copy of the table computes it again. It holds three things:
  the words with their positions and weights (title A, occupation B, description D); one
  tag per filter value (``#m751``, ``#sprocessing``, ``#jordinary``, ``#e<CVR>``); and
  every word once more behind the compound tag of its order's municipality and status
  (``#751#/0#/tomrer``; no positions: it only matches, never scores).
* **Why the words behind the compound tag.** Every query word is a prefix, and GIN answers
  a prefix by merging the entries of every lexeme it starts, across the whole table, into
  a bitmap before any filter applies: a common word is tens of thousands of orders, most
  of them elsewhere in the country, and each one left after the filter's bitmap costs a
  visit to its row. The prefix ``#751#/0#/tomr`` starts only the lexemes of Aarhus's open
  orders, so GIN reads just those entries and the bitmap holds exactly the matches (no
  recheck, no row read for an order that does not match). Municipality and status is the
  search caseworkers make; other filters (a municipality alone, a job type, an employer)
  are the words AND their tags: exact, with the word's bitmap over the whole table.
* **A tag is never a word, nor another tag.** Tags start with :data:`TAG_MARK`, which
  ``jobordre_fold`` turns into a space, so no word of an order or a query contains it and
  no prefix of one reaches a tag. Inside a tag a value's ``#`` is written ``#!`` and a
  value ends with :data:`TAG_END`, so a tag reads back one way only: a value cannot pose as
  another place's word. A value longer than :data:`TAG_VALUE_BYTES` is tagged by its md5,
  and the compound copy keeps :data:`PLACE_WORD_CHARS` characters of a word (a lexeme
  holds at most 2,046 bytes); a longer query word is matched by the plain words and tags.
* **The ranking is bounded, the total exact, in one statement.** GIN returns an unordered
  bitmap, so the ids of all the matches are read (one row each: that is also the exact
  count), the newest window is sorted out of them on ``id`` alone, and only those orders
  are ranked: ``ts_rank`` with weights 1.0 (title), 0.5 (occupation), 0.1 (description),
  SQLite's bm25 weights 10 : 5 : 1, for the plain words (tags match no word and score
  nothing). Ranking reads each order's vector, the dearest part of a search; the column's
  storage is ``MAIN``, so the vector stays in the row, compressed, instead of costing a
  TOAST lookup per ranked order.
* **A custom plan every time** (``prepare=False``): a generic plan cannot know how common
  the words are.

``unaccent`` folds more than unicode61 does: ``ø``, ``æ``, ``å`` become ``o``, ``ae``,
``a`` (unicode61 keeps them, having no Unicode decomposition), so on PostgreSQL ``tomrer``
also finds "Tømrer". Migration 16 computes every order's vector again and builds the
index anew, with no writes meanwhile: plan it (its time: docs/scaling-out-postgres.md).
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg

from shared.search import check_words
from shared.store import sqlite_search
from shared.store.search_tags import SPELLED, STATUS_CODES

#: The text-search configuration: no stemming, no stop words.
CONFIG = "simple"
#: ts_rank weights of the classes {D, C, B, A}: description, (unused), occupation, title.
RANK_WEIGHTS = "{0.1, 0.0, 0.5, 1.0}"


def _fold_sql(text: str) -> str:
    """SQL folding the expression ``text`` as the index folds every text: ``jobordre_fold``,
    and written out where a call would cost (:data:`SEARCH_VECTOR_FUNCTION_SQL`)."""
    return (
        "regexp_replace(lower(public.unaccent('public.unaccent'::regdictionary, "
        f"{text})), '[^[:alnum:]]+', ' ', 'g')"
    )


#: Migration 3: the unaccent extension (trusted: a database owner may create it), the
#: folding function (IMMUTABLE, as a generated column requires), the column and its index.
CREATE_INDEX_SQL = f"""
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE OR REPLACE FUNCTION jobordre_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN {_fold_sql("$1")};
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


#: First character of every tag lexeme: ``jobordre_fold`` turns it into a space, so no
#: word of an order's text and no word of a query contains it, and no tag is a prefix of a
#: word's lexeme nor a word a prefix of a tag.
TAG_MARK = "#"
#: Ends a value inside a tag; the ``#`` of a value is written ``#!`` (and a space ``#_``, so
#: the migration can split lexemes at spaces), so a value never contains it and every tag
#: reads back one way only.
TAG_END = "#/"
#: A value longer than this (bytes) is tagged by its md5 (after ``#%``, which an escaped value
#: never starts with): a lexeme holds at most 2,046 bytes, and an order whose filter value
#: made a longer one could not be written.
TAG_VALUE_BYTES = 200
#: The compound tag's copy of a word keeps this many characters of it (a lexeme's limit
#: again); a query word longer than this is matched by the plain word and the filter tags.
PLACE_WORD_CHARS = 200

#: Memory for building the GIN index in migration 16: with the default 64 MB the build
#: writes its entries out many more times.
GIN_BUILD_MEMORY = "256MB"


def _tag_value_sql(value: str) -> str:
    """SQL of :func:`tag_value` of the expression ``value``."""
    return (
        f"CASE WHEN octet_length({value}) <= {TAG_VALUE_BYTES}"
        f" THEN replace(replace({value}, '#', '#!'), ' ', '#_') ELSE '#%' || md5({value}) END"
    )


#: A status as the compound tag holds it: the code of a known status (:data:`STATUS_CODES`,
#: shared with SQLite's tags), else the spelled-out value, which never reads as a code.
_STATUS_CODE_SQL = (
    "CASE status "
    + " ".join(f"WHEN '{value}' THEN '{code}'" for value, code in STATUS_CODES.items())
    + f" ELSE '{SPELLED['status']}' || status_value END"
)

#: The words of an order, weighted and with their positions: the part of the vector that
#: only its text makes (title, occupation, description).
_WORDS_SQL = (
    f"setweight(to_tsvector('{CONFIG}', {_fold_sql('title')}), 'A')\n"
    f"        || setweight(to_tsvector('{CONFIG}', {_fold_sql('occupation')}), 'B')\n"
    f"        || setweight(to_tsvector('{CONFIG}', {_fold_sql('description')}), 'D')"
)

#: The declarations of the tags' part of the vector, from ``words`` and the filter values.
_TAGS_DECLARATIONS = rf"""    municipality_value text := {_tag_value_sql("municipality")};
    status_value text := {_tag_value_sql("status")};
    place text := '{TAG_MARK}' || municipality_value || '{TAG_END}'
        || {_STATUS_CODE_SQL} || '{TAG_END}';
    -- Neither lexemes of folded text nor the place (its values' spaces are written #_)
    -- hold a space: joined by spaces they split back exactly.
    joined text := array_to_string(tsvector_to_array(words), ' ');
    tags text[] := ARRAY[
        '{TAG_MARK}{SPELLED["municipality"]}' || municipality_value,
        '{TAG_MARK}{SPELLED["status"]}' || status_value,
        '{TAG_MARK}{SPELLED["job_type"]}' || {_tag_value_sql("job_type")},
        '{TAG_MARK}{SPELLED["employer_cvr"]}' || {_tag_value_sql("employer_cvr")}
    ];
"""

#: The statements of the tags' part: the words, one tag per filter value, and every word
#: again behind the compound tag of the order's place and status.
_TAGS_BODY = rf"""    IF joined = '' THEN
        RETURN words || array_to_tsvector(tags);
    END IF;
    IF joined ~ '\S{{{PLACE_WORD_CHARS + 1}}}' THEN
        joined := regexp_replace(joined, '(\S{{{PLACE_WORD_CHARS}}})\S+', '\1', 'g');
    END IF;
    RETURN words || array_to_tsvector(
        tags || string_to_array(place || replace(joined, ' ', ' ' || place), ' ')
    );
"""

#: The vector's function as every migration declares it, up to its body.
_VECTOR_FUNCTION_HEAD = """CREATE OR REPLACE FUNCTION jobordre_search_vector(
    title text, occupation text, description text,
    municipality text, status text, job_type text, employer_cvr text
) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $f$
"""

#: The vector of an order (see the module docstring), as migrations 16 and 17 made the
#: generated column compute it. PL/pgSQL, and every expression written out in it: a SQL
#: function with a subquery is not inlined, and one called from PL/pgSQL is parsed and
#: planned again at every call made inside a savepoint, which is every command's
#: (migration 17; what it cost: docs/scaling-out-postgres.md). Released text: unchanged.
SEARCH_VECTOR_FUNCTION_SQL = f"""
{_VECTOR_FUNCTION_HEAD}DECLARE
    words tsvector := {_WORDS_SQL};
{_TAGS_DECLARATIONS}BEGIN
{_TAGS_BODY}END
$f$;
"""

#: Migration 16: every word also indexed behind its order's municipality and status (the
#: compound tag), and one tag lexeme per filter value; see the module docstring.
SEARCH_VECTOR_SQL = (
    SEARCH_VECTOR_FUNCTION_SQL
    + f"""
ALTER TABLE orders DROP COLUMN IF EXISTS search;
ALTER TABLE orders ADD COLUMN search tsvector GENERATED ALWAYS AS (jobordre_search_vector(
    title, occupation, description, municipality, status, job_type, employer_cvr
)) STORED, ALTER COLUMN search SET STORAGE MAIN;
SET LOCAL maintenance_work_mem = '{GIN_BUILD_MEMORY}';
CREATE INDEX IF NOT EXISTS orders_search ON orders USING gin (search);
"""
)

#: Migration 17: the same vector, computed without SQL functions. The stored vectors stay
#: as they are (the function's every result is the same); migration 16 as first released
#: made ``jobordre_tag_value``, which nothing calls now.
SEARCH_VECTOR_WRITTEN_OUT_SQL = (
    SEARCH_VECTOR_FUNCTION_SQL + "DROP FUNCTION IF EXISTS jobordre_tag_value(text);\n"
)


#: Columns the database computes for each row written, by table: never copied, never
#: written by jobordre (the search vector, a trigger's since migration 18).
COMPUTED_COLUMNS: dict[str, tuple[str, ...]] = {"orders": ("search",)}

#: The columns the vector is made of.
_TEXT_COLUMNS = ("title", "occupation", "description")
_FILTER_COLUMNS = ("municipality", "status", "job_type", "employer_cvr")


def _changed(columns: tuple[str, ...]) -> str:
    """SQL, in a row trigger: whether the UPDATE changes any of ``columns``."""
    new, old = (", ".join(f"{row}.{column}" for column in columns) for row in ("NEW", "OLD"))
    return f"({new}) IS DISTINCT FROM ({old})"


#: Migration 18: the vector kept by a trigger instead of a generated column, so that a
#: change of an order's place or status (a status change, the commonest write) takes the
#: words from the stored vector instead of folding and parsing the text again: only the
#: tags are made anew (``jobordre_search_tags``, the one place they are made, which the
#: whole vector's function calls too). What that saves: docs/scaling-out-postgres.md.
#:
#: Why the stored words are exactly the text's: every lexeme ``to_tsvector`` makes has a
#: position, and ``setweight`` gave each a weight, so ``ts_filter`` on every weight keeps
#: them all, positions and weights as they were; the tags and the compound copies are made
#: by ``array_to_tsvector``, without positions, so it drops them all.
#:
#: As the generated column did, the vector cannot be written: an INSERT or an UPDATE that
#: sets it gets the computed one (so the UPDATE trigger fires on every UPDATE, and names no
#: column: one that named ``search`` would also keep an earlier migration, run again, from
#: dropping it). The stored vectors do not change (``DROP EXPRESSION`` keeps them): the
#: migration runs in a moment, and again without harm.
SEARCH_VECTOR_MAINTAINED_SQL = f"""
CREATE OR REPLACE FUNCTION jobordre_search_tags(
    words tsvector, municipality text, status text, job_type text, employer_cvr text
) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $f$
DECLARE
{_TAGS_DECLARATIONS}BEGIN
{_TAGS_BODY}END
$f$;
{_VECTOR_FUNCTION_HEAD}BEGIN
    RETURN jobordre_search_tags({_WORDS_SQL},
        municipality, status, job_type, employer_cvr);
END
$f$;
CREATE OR REPLACE FUNCTION jobordre_search_maintain() RETURNS trigger
    LANGUAGE plpgsql
AS $f$
BEGIN
    IF TG_OP = 'INSERT' OR {_changed(_TEXT_COLUMNS)} THEN
        NEW.search := jobordre_search_vector(NEW.title, NEW.occupation, NEW.description,
            NEW.municipality, NEW.status, NEW.job_type, NEW.employer_cvr);
    ELSIF {_changed(_FILTER_COLUMNS)} THEN
        NEW.search := jobordre_search_tags(ts_filter(OLD.search, '{{a,b,c,d}}'),
            NEW.municipality, NEW.status, NEW.job_type, NEW.employer_cvr);
    ELSE
        NEW.search := OLD.search;
    END IF;
    RETURN NEW;
END
$f$;
ALTER TABLE orders ALTER COLUMN search DROP EXPRESSION IF EXISTS;
CREATE OR REPLACE TRIGGER orders_search_on_insert BEFORE INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION jobordre_search_maintain();
CREATE OR REPLACE TRIGGER orders_search_on_update BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION jobordre_search_maintain();
"""


def tag_value(value: str) -> str:
    """A filter value as a tag holds it, as the vector's SQL writes it (:func:`_tag_value_sql`)."""
    if len(value.encode()) <= TAG_VALUE_BYTES:
        return value.replace("#", "#!").replace(" ", "#_")
    return "#%" + hashlib.md5(value.encode()).hexdigest()  # noqa: S324 - a name, not a secret


def filter_tag(name: str, value: str) -> str:
    """The lexeme of one filter value (``name`` is one of :data:`shared.search.FILTERS`)."""
    return TAG_MARK + SPELLED[name] + tag_value(value)


def place_tag(municipality: str, status: str) -> str:
    """What every word of an order in ``municipality`` with ``status`` is indexed behind."""
    code = STATUS_CODES.get(status)
    status_part = str(code) if code is not None else SPELLED["status"] + tag_value(status)
    return TAG_MARK + tag_value(municipality) + TAG_END + status_part + TAG_END


def _lexeme(text: str) -> str:
    """A lexeme as tsquery's input reads it literally: quoted, ``'`` and ``\\`` escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def match_query(folded: list[str], plain: str, filters: dict[str, str]) -> str:
    """The tsquery (as text) of the folded words and the filters, all inside the index.

    ``plain`` is :data:`CREATE_INDEX_SQL`'s prefix query of the same words, as text. With
    a municipality and a status, and every word kept whole by the parser (``plain`` is
    then exactly the words as prefixes), each word is searched behind the compound tag:
    only that place's and status's orders are read. Otherwise the words and one tag per
    filter.
    """
    rest = dict(filters)
    query = plain
    whole = plain == " & ".join(_lexeme(word) + ":*" for word in folded)
    if (
        whole
        and "municipality" in rest
        and "status" in rest
        and all(len(word) <= PLACE_WORD_CHARS for word in folded)
    ):
        place = place_tag(rest.pop("municipality"), rest.pop("status"))
        query = " & ".join(_lexeme(place + word) + ":*" for word in folded)
    tags = [_lexeme(filter_tag(name, value)) for name, value in rest.items()]
    return " & ".join([f"( {query} )", *tags]) if tags else query


#: The query's words folded as the indexed text is (for :func:`check_words`), and the prefix
#: query :data:`CREATE_INDEX_SQL` makes of them, as text.
PREPARE_SQL = (
    "SELECT ARRAY(SELECT word FROM regexp_split_to_table(btrim(jobordre_fold(%s)), ' +')"
    " AS word WHERE word <> ''), jobordre_prefix_query(%s)::text"
)

#: The total and the page: every match's id from the GIN index (a bitmap, unordered), the
#: newest ``window`` of them ranked by ``ts_rank`` with the plain words, the page cut. The
#: window's rows are found again by ``ctid`` (one page each, already read), not through the
#: primary key; the same statement, so the same snapshot and the same row versions.
SEARCH_SQL = f"""
WITH matches AS MATERIALIZED (
    SELECT id, ctid FROM orders WHERE search @@ %(match)s::tsquery
), newest AS (
    SELECT ctid FROM matches ORDER BY id DESC LIMIT %(window)s
)
SELECT (SELECT COUNT(*) FROM matches), ARRAY(
    SELECT o.id FROM newest JOIN orders AS o ON o.ctid = newest.ctid
    ORDER BY ts_rank('{RANK_WEIGHTS}', o.search, %(rank)s::tsquery) DESC, o.id DESC
    LIMIT %(limit)s OFFSET %(offset)s
)
"""  # noqa: S608 - constants only


def search_ids(
    conn: psycopg.Connection[Any],
    *,
    words: list[str],
    filters: dict[str, str],
    limit: int,
    offset: int,
) -> tuple[int, list[int]]:
    """(exact total, page of ids): of the newest :data:`.sqlite_search.RANK_WINDOW` matches
    (grown to cover ``offset + limit``), best ``ts_rank`` first, newest first on ties.

    ``words`` are runs of letters and digits (:func:`shared.search.words`).
    """
    text = " ".join(words)
    row = conn.execute(PREPARE_SQL, [text, text]).fetchone()
    folded, plain = (list(row[0]), row[1]) if row else ([], None)
    # unaccent may fold a word into shorter ones (ŉ is 'n): each is a prefix to merge.
    check_words(folded, folded=True)
    if plain is None:  # nothing left of the words once folded: nothing matches
        return 0, []
    params = {
        "match": match_query(folded, plain, filters),
        "rank": plain,
        "window": max(sqlite_search.RANK_WINDOW, offset + limit),
        "limit": limit,
        "offset": offset,
    }
    # Never a generic plan: the plan depends on how common the words are.
    found = conn.execute(SEARCH_SQL, params, prepare=False).fetchone()
    if found is None:
        return 0, []
    return int(found[0]), [int(order_id) for order_id in found[1]]
