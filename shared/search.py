"""Searching job orders (S1): the semantics both store engines implement.

Every word of the caseworker's text must occur in the title, description or occupation,
as a prefix ("tømr" finds "Tømrer"); the filters (municipality, status, job type, employer)
must hold; the total is exact; the page is best match first (a title word weighs most),
newest first on ties. Without words, most recently updated first. How each engine does it
fast at a million orders: :mod:`shared.store.sqlite_search` (FTS5) and
:mod:`shared.store.postgres_search` (tsvector + GIN).

**The work one query may cause is bounded** (:func:`check_text`): every word is a prefix,
and the engine merges the index entries of every term with that prefix across the whole
corpus; for a one-letter prefix that is every word with that letter (SQLite's FTS5: at
10,000 orders 620 ms against 0.2 ms for a normal search, tens of seconds at a million), so
a word needs at least :data:`MIN_WORD_CHARS` characters and a query at most
:data:`MAX_WORDS` words, on both engines. A word's length counts as the engine folds it:
PostgreSQL's ``unaccent`` makes ``ŉ`` two characters, ``'n``, and so ``ŉŉ`` two one-letter
prefixes (a hundred times a normal search's cost), so that engine checks its folded
words too (:func:`check_words`). Both are refused with a ``validation_error`` on ``text``
that says so. A page lies at most :data:`MAX_OFFSET` matches deep (``offset``, checked
with the command's payload): a deeper page costs in proportion to its depth (SQLite ranks
``offset + limit`` matches; figures in docs/performance.md).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from shared.errors import InvalidInput
from shared.models import JobOrder
from shared.store.interface import Tx

#: The filters a search takes, each an ``orders`` column of the same name.
FILTERS = ("municipality", "status", "job_type", "employer_cvr")
#: The shortest word a text search takes (characters): a shorter prefix merges too much.
MIN_WORD_CHARS = 2
#: The most words one text search takes.
MAX_WORDS = 8
#: The deepest page a search returns: its ``offset`` is at most this. Within it, SQLite
#: ranks no more matches than a first page does (its rank window, 1,000, plus the limit);
#: further on, narrow the search with words or filters.
MAX_OFFSET = 1_000

#: A word: letters and digits (``_`` separates, as in SQLite's unicode61 tokenizer).
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The words of free text: runs of letters and digits, so ``SOSU-assistent`` is two.

    NFC first, so that an accent typed as a separate combining mark stays in its word.
    """
    return _WORD.findall(unicodedata.normalize("NFC", text))


def check_text(text: str) -> None:
    """Refuse text whose search would cost far more than a normal one (module docstring):
    a :class:`InvalidInput` on ``text`` saying what to change."""
    found = words(text)
    check_words(found)
    if len(found) > MAX_WORDS:
        raise InvalidInput(
            f"text: at most {MAX_WORDS} words ({len(found)} given); every word must occur, "
            "so keep the ones that matter and use the filters (--municipality, --status, "
            "--job-type, --employer) for the rest",
            field="text",
        )


def check_words(found: list[str], *, folded: bool = False) -> None:
    """Refuse words shorter than :data:`MIN_WORD_CHARS`; ``folded``: the words as the
    engine folded them (the message then says so). :class:`InvalidInput` on ``text``."""
    short = sorted({word for word in found if len(word) < MIN_WORD_CHARS})
    if not short:
        return
    how = " once accents are folded (ŉ is 'n)" if folded else ""
    raise InvalidInput(
        f"text: every word needs at least {MIN_WORD_CHARS} letters or digits{how}, since "
        f"each is searched as the start of words and a shorter one matches almost every "
        f"order; drop or lengthen {', '.join(repr(word) for word in short)} "
        "(SOSU-assistent and a-kasse are split at the dash: search 'kasse')",
        field="text",
    )


def search_ids(
    conn: Tx, *, text: str | None, filters: dict[str, str], limit: int, offset: int
) -> tuple[int, list[int]]:
    """The total and the page of order ids, best first. Text beyond the bounds of
    :func:`check_text` is refused.

    Unknown filter names raise ``KeyError``: only :data:`FILTERS` filter.
    """
    for name in filters:
        if name not in FILTERS:
            raise KeyError(f"no search filter {name!r}")
    check_text(text or "")
    found = words(text or "")
    if found:
        return conn.search_ids(words=found, filters=filters, limit=limit, offset=offset)
    # Without text the ``orders`` B-tree indexes answer, on either engine.
    where = " AND ".join(f"{column} = ?" for column in filters) or "1 = 1"
    params: list[Any] = list(filters.values())
    total = conn.execute(f"SELECT COUNT(*) FROM orders WHERE {where}", params).fetchone()[0]  # noqa: S608
    rows = conn.execute(
        f"SELECT id FROM orders WHERE {where} ORDER BY updated_at DESC, id DESC"  # noqa: S608
        " LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return int(total), [int(row[0]) for row in rows]


def search_orders(
    conn: Tx,
    *,
    text: str | None,
    filters: dict[str, str],
    limit: int,
    offset: int,
) -> tuple[int, list[JobOrder]]:
    """Orders matching ``text`` (every word as a prefix) and the filters: (total, page)."""
    total, ids = search_ids(conn, text=text, filters=filters, limit=limit, offset=offset)
    if not ids:
        return total, []
    marks = ", ".join("?" for _ in ids)
    docs = {
        int(row[0]): row[1]
        for row in conn.execute(f"SELECT id, doc FROM orders WHERE id IN ({marks})", ids)  # noqa: S608
    }
    return total, [JobOrder.from_stored(docs[order_id]) for order_id in ids]
