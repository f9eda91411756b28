"""Dead letters (what could not be processed, with its reason) and the ops audit of them.

What a letter keeps of a message nobody vouches for (``undecodable``, or refused as
``forbidden``: unsigned, forged, expired, not allowed) is bounded: whoever can write to
Redis can send such messages, and they are never retried. Its texts are cut to
:data:`UNTRUSTED_KEPT_CHARS` with a marker saying how long they were, and past
:data:`UNTRUSTED_KEPT_PER_PRINCIPAL_PER_HOUR` such letters naming one principal in the
last hour, a letter keeps only its reason and the size. Every attempt still gets its row.
A rejected command its organisation signed is kept whole: it may be retried.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.errors import NotFound
from shared.store.interface import Tx

#: Most characters of each text (``message``, ``original``, ``reason``, ``traceback``) a
#: letter keeps of a message nobody vouches for; ``original`` is kept only if it fits.
UNTRUSTED_KEPT_CHARS = 16 * 1024
#: Letters of untrusted messages naming one principal (or none) in the last hour whose texts
#: are kept at all; the ones after keep the reason and the size only.
UNTRUSTED_KEPT_PER_PRINCIPAL_PER_HOUR = 100


def _cut(text: str, budget: int, why: str) -> str:
    if len(text) <= budget:
        return text
    return text[:budget] + f"…[{why}: {budget} of {len(text)} characters kept]"


def record_dead_letter(
    conn: Tx,
    *,
    at: datetime,
    source: str,
    code: str,
    reason: str,
    message: str,
    command_id: str | None = None,
    kind: str | None = None,
    principal: str | None = None,
    traceback: str | None = None,
    original: str | None = None,
) -> int:
    """Keep a message that could not be processed, with its reason; returns its id.

    ``message`` is what people see (personal data masked); ``original`` is the message as
    it arrived, kept only so that it can be retried. An untrusted message's texts are
    bounded (see the module docstring).
    """
    if source == "undecodable" or code == "forbidden":
        budget, why = UNTRUSTED_KEPT_CHARS, "cut"
        recent = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE at >= ? AND COALESCE(principal, '') = ?"
            " AND (source = 'undecodable' OR code = 'forbidden')",
            ((at - timedelta(hours=1)).isoformat(), principal or ""),
        ).fetchone()
        if int(recent[0]) >= UNTRUSTED_KEPT_PER_PRINCIPAL_PER_HOUR:
            budget = 0
            why = (
                f"not kept: more than {UNTRUSTED_KEPT_PER_PRINCIPAL_PER_HOUR} refused messages "
                f"named {principal or 'no principal'} in the hour"
            )
        message = _cut(message, budget, why)
        reason = _cut(reason, max(budget, 1024), why)
        traceback = None if traceback is None else _cut(traceback, budget, why)
        if original is not None and len(original) > budget:
            original = None
    cursor = conn.execute(
        "INSERT INTO dead_letters (at, source, command_id, kind, principal, code, reason,"
        " traceback, message, original) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            at.isoformat(),
            source,
            command_id,
            kind,
            principal,
            code,
            reason,
            traceback,
            message,
            original,
        ),
    )
    return int(cursor.fetchone()[0])


def list_dead_letters(conn: Tx, limit: int = 100) -> list[dict[str, Any]]:
    """The newest dead letters first."""
    rows = conn.execute(
        "SELECT id, at, source, command_id, kind, principal, code, reason, traceback, message"
        " FROM dead_letters ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [dict(row) for row in rows]


# --- ops: dead-letter retry, purge and their audit ------------------------------------------

#: The dead-letter columns people may see; ``original`` (the raw message) is never among them.
DEAD_LETTER_COLUMNS = (
    "id, at, source, command_id, kind, principal, code, reason, traceback, message,"
    " retried_at, retried_by"
)


def dead_letter(conn: Tx, letter_id: int) -> dict[str, Any]:
    """One dead letter without its raw message; :class:`NotFound` if there is none."""
    row = conn.execute(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = ?",  # noqa: S608
        (letter_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"dead letter {letter_id}: not found; see `jobordre dead list`")
    return dict(row)


def dead_letter_original(conn: Tx, letter_id: int) -> str | None:
    """The raw message of a dead letter, for retry only: it may hold personal data."""
    row = conn.execute("SELECT original FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
    return None if row is None else row["original"]


def dead_letters_to_retry(conn: Tx) -> list[int]:
    """Ids of the dead letters never retried that still have their raw message, oldest first."""
    rows = conn.execute(
        "SELECT id FROM dead_letters WHERE retried_at IS NULL AND original IS NOT NULL ORDER BY id"
    ).fetchall()
    return [int(row["id"]) for row in rows]


def mark_dead_letter_retried(conn: Tx, letter_id: int, at: datetime, operator: str) -> None:
    """Note that a dead letter was put back on its queue, when and by whom."""
    conn.execute(
        "UPDATE dead_letters SET retried_at = ?, retried_by = ? WHERE id = ?",
        (at.isoformat(), operator, letter_id),
    )


def purge_dead_letters(conn: Tx, before: datetime) -> int:
    """Delete the dead letters recorded before ``before``; returns how many."""
    cursor = conn.execute("DELETE FROM dead_letters WHERE at < ?", (before.isoformat(),))
    return int(cursor.rowcount)


def count_dead_letters(conn: Tx) -> dict[str, int]:
    """Dead letters not yet retried, per job kind (``?`` for a message of no known kind)."""
    rows = conn.execute(
        "SELECT COALESCE(kind, '?') AS kind, COUNT(*) AS n FROM dead_letters"
        " WHERE retried_at IS NULL GROUP BY 1"
    ).fetchall()
    return {str(row["kind"]): int(row["n"]) for row in rows}


def record_ops_action(
    conn: Tx,
    *,
    at: datetime,
    operator: str,
    action: str,
    count: int,
    detail: str,
    dead_letter_id: int | None = None,
) -> int:
    """Append one row to the ops audit log; returns its id."""
    cursor = conn.execute(
        "INSERT INTO ops_audit (at, operator, action, dead_letter_id, count, detail)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (at.isoformat(), operator, action, dead_letter_id, count, detail),
    )
    return int(cursor.fetchone()[0])


def ops_audit(conn: Tx, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ops audit rows first."""
    rows = conn.execute("SELECT * FROM ops_audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(row) for row in rows]


def find_dead_letters(
    conn: Tx, *, limit: int, source: str | None = None, pending: bool = False
) -> list[dict[str, Any]]:
    """Dead letters newest first, without raw messages; ``pending``: not retried yet."""
    where = ["1 = 1"]
    params: list[Any] = []
    if source is not None:
        where.append("source = ?")
        params.append(source)
    if pending:
        where.append("retried_at IS NULL")
    rows = conn.execute(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [dict(row) for row in rows]
