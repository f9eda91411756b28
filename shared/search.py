"""Searching job orders (S1): the semantics both store engines implement.

Every word of the caseworker's text must occur in the title, description or occupation,
as a prefix ("tømr" finds "Tømrer"); the filters (municipality, status, job type, employer)
must hold; the total is exact; the page is best match first (a title word weighs most),
newest first on ties. Without words, most recently updated first. How each engine does it
fast at a million orders: :mod:`shared.store.sqlite_search` (FTS5) and
:mod:`shared.store.postgres_search` (tsvector + GIN).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from shared.models import JobOrder
from shared.store.interface import Tx

#: The filters a search takes, each an ``orders`` column of the same name.
FILTERS = ("municipality", "status", "job_type", "employer_cvr")

#: A word: letters and digits (``_`` separates, as in SQLite's unicode61 tokenizer).
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The words of free text: runs of letters and digits, so ``SOSU-assistent`` is two.

    NFC first, so that an accent typed as a separate combining mark stays in its word.
    """
    return _WORD.findall(unicodedata.normalize("NFC", text))


def search_ids(
    conn: Tx, *, text: str | None, filters: dict[str, str], limit: int, offset: int
) -> tuple[int, list[int]]:
    """The total and the page of order ids, best first.

    Unknown filter names raise ``KeyError``: only :data:`FILTERS` filter.
    """
    for name in filters:
        if name not in FILTERS:
            raise KeyError(f"no search filter {name!r}")
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
    return total, [JobOrder.model_validate_json(docs[order_id]) for order_id in ids]
