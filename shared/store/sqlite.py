"""The SQLite engine: one file, the embedded default and the engine of ``jobordre up``.

One connection per thread (Dramatiq runs many), WAL so readers never wait for the writer,
a busy timeout, and ``BEGIN IMMEDIATE`` for writes so two writers queue up at the start of
a transaction instead of failing half-way with "database is locked". Writers of one host
queue on a file lock before that (:mod:`shared.store.file_lock`), which wakes the next at
once where SQLite's busy handler would sleep.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from shared.errors import Unavailable
from shared.store import secrets_at_rest, sqlite_schema, sqlite_search
from shared.store.file_lock import ProcessLock
from shared.store.interface import TABLES, Params, Result, Store, Tx
from shared.store.private_files import private_database
from shared.store.sqlite_checkpoint import SAFETY_NET_PAGES, Checkpoints

#: Pause between two tries of a new file's switch to WAL that lost a race, in ms.
WAL_SWITCH_RETRY_MS = 5


def end_transaction(conn: sqlite3.Connection) -> None:
    """Roll back the connection's open transaction, if any (a read-only one loses nothing)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class SqliteTx(Tx):
    """A thread's SQLite connection, in the shared dialect (SQLite speaks it natively)."""

    engine = "sqlite"
    #: AUTOINCREMENT's last value (no row before the first event).
    last_event_seq_sql = (
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)"
    )

    def __init__(self, conn: sqlite3.Connection, memo: dict[str, Any] | None = None) -> None:
        #: The stdlib connection, for SQLite-only work (migrations, dumps, benchmarks).
        self.raw = conn
        self.memo = memo if memo is not None else {}

    def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement."""
        return cast(Result, self.raw.execute(sql, params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""
        self.raw.executemany(sql, rows)

    def columns(self, table: str) -> list[str]:
        """``PRAGMA table_info``."""
        return [str(row["name"]) for row in self.raw.execute(f"PRAGMA table_info({table})")]

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """One prepared INSERT, run per row (triggers keep the search index in step)."""
        marks = ", ".join("?" for _ in columns)
        before = self.raw.total_changes
        self.raw.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
            rows,
        )
        return self.raw.total_changes - before

    def next_event_seq(self) -> int:
        """AUTOINCREMENT's last value + 1: inside ``BEGIN IMMEDIATE`` no one else takes it."""
        return self.last_event_seq() + 1

    def last_event_seq(self) -> int:
        """AUTOINCREMENT's last value: it never hands one out twice."""
        return int(self.raw.execute(self.last_event_seq_sql).fetchone()[0])

    def search_ids(
        self, *, words: list[str], filters: dict[str, str], limit: int, offset: int
    ) -> tuple[int, list[int]]:
        """FTS5 search; see :mod:`shared.store.sqlite_search`."""
        return sqlite_search.search_ids(
            self.raw, words=words, filters=filters, limit=limit, offset=offset
        )


class SqliteStore(Store):
    """A SQLite file holding orders, placements, the logs, the ledger and dead letters."""

    engine = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 10_000,
        migrate: bool = True,
        secrets_key_file: Path | None = None,
    ) -> None:
        """``secrets_key_file``: the key file the signing secrets are wrapped under
        (:mod:`shared.store.secrets_at_rest`); default ``<path>.secrets.key``."""
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = threading.Lock()
        self._writers = ProcessLock(path.with_name(path.name + ".write.lock"))
        #: WAL checkpoints after the write lock (:mod:`shared.store.sqlite_checkpoint`).
        self.checkpoints = Checkpoints(path)
        self.memo: dict[str, Any] = {
            secrets_at_rest.MEMO: secrets_at_rest.SecretsKey(
                secrets_key_file or path.with_name(path.name + ".secrets.key")
            )
        }
        private_database(path)
        if migrate:
            self.migrate()

    def migrate(self) -> int:
        """Run the migrations of :mod:`shared.store.sqlite_schema` under a file lock."""
        raw = self.connection().raw
        # A migration may sort a whole table (an index built on a million orders): its
        # temporary files stay files, not memory, as before the write path moved its own.
        raw.execute("PRAGMA temp_store = DEFAULT")
        try:
            version = sqlite_schema.migrate(
                raw, self.path.with_name(self.path.name + ".migrate.lock")
            )
        finally:
            raw.execute("PRAGMA temp_store = MEMORY")
        secrets_at_rest.wrap_in(self)
        return version

    def schema_version(self) -> int:
        """``PRAGMA user_version``."""
        return int(self.connection().execute("PRAGMA user_version").fetchone()[0])

    def describe(self) -> str:
        """The file's path."""
        return str(self.path)

    def tables(self) -> list[str]:
        """The data tables this store has."""
        listed = self.connection().execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        present = {str(row[0]) for row in listed}
        return [name for name in TABLES if name in present]

    def connection(self) -> SqliteTx:
        """This thread's connection, opened on first use."""
        tx: SqliteTx | None = getattr(self._local, "tx", None)
        if tx is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            self._enter_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            # The group commit runs each write in a SAVEPOINT, whose undo pages SQLite keeps
            # in a temporary file: on disk by default (/var/tmp), a file created, written and
            # deleted per transaction, a seventh of a placement's CPU. In memory they are at
            # most a batch's changed pages, read only by a rollback; durability is the WAL's.
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute(f"PRAGMA wal_autocheckpoint = {SAFETY_NET_PAGES}")
            tx = SqliteTx(conn, self.memo)
            self._local.tx = tx
            with self._lock:
                self._connections.append(conn)
        return tx

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL (it stays so; later connections find it done).

        On a new file, connections of several threads or hosts starting at once race to
        switch it, and SQLite answers the loser "database is locked" at once, without its
        busy handler (the switch needs an exclusive lock that two upgrading connections
        would deadlock on). The race ends as soon as the winner's statement does: try
        again, within the busy timeout.
        """
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(WAL_SWITCH_RETRY_MS / 1000)

    @contextmanager
    def write(self) -> Iterator[SqliteTx]:
        """One write transaction: committed on success, rolled back on any exception.

        Threads of one process queue on a Python lock first, processes on a file lock
        next. SQLite's own busy handler sleeps (1, 2, 5, 10 ... ms) between tries, so
        writers contending inside SQLite wait far longer than a write holds the lock; only
        writers that take neither lock (other programs) meet that handler now.
        """
        with self._writer, self._writers.held():
            tx = self.connection()
            committed = False
            try:
                try:
                    tx.raw.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as error:
                    raise Unavailable(
                        f"the store is busy ({error}); the command will be retried"
                    ) from error
                yield tx
                tx.raw.execute("COMMIT")
                committed = True
            finally:
                # Whatever ended the scope (an error, or an asynchronous exception such as a
                # time limit arriving between two statements, even right after BEGIN), the
                # transaction must not outlive it: an open one keeps the write lock.
                if not committed:
                    end_transaction(tx.raw)

    def after_commit(self) -> None:
        """A WAL checkpoint, on this thread's connection, if enough pages wait for one
        (:mod:`shared.store.sqlite_checkpoint`)."""
        self.checkpoints.after_commit(self.connection().raw)

    @contextmanager
    def read(self) -> Iterator[SqliteTx]:
        """One read transaction: a consistent snapshot across several queries."""
        tx = self.connection()
        try:
            tx.raw.execute("BEGIN")
            yield tx
            tx.raw.execute("COMMIT")
        finally:
            end_transaction(tx.raw)

    def restart_ids(self) -> None:
        """Nothing to do: SQLite's next rowid and AUTOINCREMENT follow the largest id."""

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        self._writers.close()
        self.checkpoints.close()
