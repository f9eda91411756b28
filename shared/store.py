"""The foundation's SQLite store: connections, transactions and the data access of S1–S5.

One connection per thread (Dramatiq runs many), WAL so readers never wait for the writer,
a busy timeout, and ``BEGIN IMMEDIATE`` for writes so two writers queue up at the start of
a transaction instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from shared import schema
from shared.errors import NotFound, Unavailable
from shared.models import JobOrder


class Store:
    """A SQLite file holding orders, placements, the logs, the ledger and dead letters."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        schema.migrate(self.connection(), path.with_name(path.name + ".migrate.lock"))

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception.

        Threads of one process queue on a Python lock first. SQLite's own busy handler
        sleeps (1, 2, 5, 10 ... ms) between tries, so threads contending inside SQLite wait
        far longer than the microseconds a write holds the lock; only other processes meet
        that handler now.
        """
        with self._writer:
            conn = self.connection()
            committed = False
            try:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as error:
                    raise Unavailable(
                        f"the store is busy ({error}); the command will be retried"
                    ) from error
                yield conn
                conn.execute("COMMIT")
                committed = True
            finally:
                # Whatever ended the scope (an error, or an asynchronous exception such as a
                # time limit arriving between two statements, even right after BEGIN), the
                # transaction must not outlive it: an open one keeps the write lock.
                if not committed:
                    end_transaction(conn)

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across several queries."""
        conn = self.connection()
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        finally:
            end_transaction(conn)

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def end_transaction(conn: sqlite3.Connection) -> None:
    """Roll back the connection's open transaction, if any (a read-only one loses nothing)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


# --- orders -------------------------------------------------------------------------------


def load_order(conn: sqlite3.Connection, order_id: int) -> JobOrder:
    """The stored order; :class:`NotFound` if there is none."""
    row = conn.execute("SELECT doc FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise NotFound(f"job order {order_id}: not found; check the id")
    return JobOrder.model_validate_json(row["doc"])


def _order_columns(order: JobOrder) -> dict[str, Any]:
    occupation = " ".join(part for part in (order.occupation.label, order.occupation.disco) if part)
    return {
        "status": order.status.value,
        "municipality": order.address.municipality,
        "job_type": order.job_type.value,
        "employer_cvr": order.employer.cvr,
        "placement_deadline": order.placement_deadline.isoformat(),
        "version": order.version,
        "updated_at": order.updated_at.isoformat(),
        "title": order.title,
        "description": order.description,
        "occupation": occupation,
        "doc": order.model_dump_json(),
    }


def next_order_id(conn: sqlite3.Connection) -> int:
    """The id the next inserted order gets."""
    row = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM orders").fetchone()
    return int(row[0])


def insert_order(conn: sqlite3.Connection, order: JobOrder) -> None:
    """Insert a new order (its id taken from :func:`next_order_id`)."""
    columns = {"id": order.id, **_order_columns(order)}
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    conn.execute(f"INSERT INTO orders ({names}) VALUES ({marks})", tuple(columns.values()))  # noqa: S608


def save_order(conn: sqlite3.Connection, order: JobOrder) -> None:
    """Overwrite an order's current state (its history lives in ``events``)."""
    columns = _order_columns(order)
    assignments = ", ".join(f"{name} = ?" for name in columns)
    conn.execute(
        f"UPDATE orders SET {assignments} WHERE id = ?",  # noqa: S608
        (*columns.values(), order.id),
    )


# --- ledger and dead letters -------------------------------------------------------------


def ledger_entry(conn: sqlite3.Connection, principal: str, command_id: str) -> sqlite3.Row | None:
    """The ledger row of an organisation's command id, if it was applied or rejected before."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM commands WHERE principal = ? AND command_id = ?", (principal, command_id)
    ).fetchone()
    return row


def claim_read(
    conn: sqlite3.Connection, principal: str, command_id: str, at: datetime, forget_before: datetime
) -> bool:
    """Note that a read command was answered; False if it was answered before.

    Rows older than ``forget_before`` go: a command that old is refused as expired anyway.
    """
    conn.execute("DELETE FROM reads WHERE at < ?", (forget_before.isoformat(),))
    cursor = conn.execute(
        "INSERT OR IGNORE INTO reads (principal, command_id, at) VALUES (?, ?, ?)",
        (principal, command_id, at.isoformat()),
    )
    return cursor.rowcount == 1


def record_command(
    conn: sqlite3.Connection,
    *,
    command_id: str,
    kind: str,
    principal: str,
    digest: str,
    outcome: str,
    reply: dict[str, Any],
    at: datetime,
) -> bool:
    """Write the ledger row of a command; False if the command id was already there."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO commands (command_id, kind, principal, digest, outcome, reply, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (command_id, kind, principal, digest, outcome, json.dumps(reply), at.isoformat()),
    )
    return cursor.rowcount == 1


def record_dead_letter(
    conn: sqlite3.Connection,
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
        " traceback, message, original) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    return int(cursor.lastrowid or 0)


def list_dead_letters(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
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


def dead_letter(conn: sqlite3.Connection, letter_id: int) -> dict[str, Any]:
    """One dead letter without its raw message; :class:`NotFound` if there is none."""
    row = conn.execute(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = ?",  # noqa: S608
        (letter_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"dead letter {letter_id}: not found; see `jobordre dead list`")
    return dict(row)


def dead_letter_original(conn: sqlite3.Connection, letter_id: int) -> str | None:
    """The raw message of a dead letter, for retry only: it may hold personal data."""
    row = conn.execute("SELECT original FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
    return None if row is None else row["original"]


def dead_letters_to_retry(conn: sqlite3.Connection) -> list[int]:
    """Ids of the dead letters never retried that still have their raw message, oldest first."""
    rows = conn.execute(
        "SELECT id FROM dead_letters WHERE retried_at IS NULL AND original IS NOT NULL ORDER BY id"
    ).fetchall()
    return [int(row["id"]) for row in rows]


def mark_dead_letter_retried(
    conn: sqlite3.Connection, letter_id: int, at: datetime, operator: str
) -> None:
    """Note that a dead letter was put back on its queue, when and by whom."""
    conn.execute(
        "UPDATE dead_letters SET retried_at = ?, retried_by = ? WHERE id = ?",
        (at.isoformat(), operator, letter_id),
    )


def forget_rejection(conn: sqlite3.Connection, principal: str, command_id: str) -> bool:
    """Delete a command's ledger row if it records a rejection, so a retry applies it.

    A row with outcome ``ok`` is kept: the command id belongs to a command that succeeded.
    """
    cursor = conn.execute(
        "DELETE FROM commands WHERE principal = ? AND command_id = ? AND outcome = 'rejected'",
        (principal, command_id),
    )
    return cursor.rowcount == 1


def purge_dead_letters(conn: sqlite3.Connection, before: datetime) -> int:
    """Delete the dead letters recorded before ``before``; returns how many."""
    cursor = conn.execute("DELETE FROM dead_letters WHERE at < ?", (before.isoformat(),))
    return int(cursor.rowcount)


def count_dead_letters(conn: sqlite3.Connection) -> dict[str, int]:
    """Dead letters not yet retried, per job kind (``?`` for a message of no known kind)."""
    rows = conn.execute(
        "SELECT COALESCE(kind, '?') AS kind, COUNT(*) AS n FROM dead_letters"
        " WHERE retried_at IS NULL GROUP BY 1"
    ).fetchall()
    return {str(row["kind"]): int(row["n"]) for row in rows}


def record_ops_action(
    conn: sqlite3.Connection,
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
        " VALUES (?, ?, ?, ?, ?, ?)",
        (at.isoformat(), operator, action, dead_letter_id, count, detail),
    )
    return int(cursor.lastrowid or 0)


def ops_audit(conn: sqlite3.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ops audit rows first."""
    rows = conn.execute("SELECT * FROM ops_audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [dict(row) for row in rows]


def find_dead_letters(
    conn: sqlite3.Connection, *, limit: int, source: str | None = None, pending: bool = False
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
