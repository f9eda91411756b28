"""Dead letters (what could not be processed, with its reason) and the ops audit of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.errors import NotFound
from shared.store.interface import Tx


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
    it arrived, kept only so that it can be retried.
    """
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
