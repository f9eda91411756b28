"""The PostgreSQL engine: one database shared by workers on several hosts (psycopg 3).

What SQLite gives for free, made to hold here too:

* **One writer at a time, in commit order.** Every write transaction first takes the
  transaction-level advisory lock :data:`WRITE_LOCK` (released by COMMIT or ROLLBACK).
  Writes from all hosts are then serial, as SQLite's ``BEGIN IMMEDIATE`` makes them on one
  host: the next ``seq`` is ``MAX(seq) + 1`` and no transaction can commit a lower ``seq``
  after a higher one (consumers deduplicate and detect gaps by ``seq``); a version read
  inside the transaction is still current when it commits (optimistic versions need no
  ``SELECT ... FOR UPDATE``); ``MAX(id) + 1`` order ids never collide. READ COMMITTED is
  enough: each statement after the lock sees every transaction committed before it.
  Reads take no lock and run in REPEATABLE READ snapshots.
* **Infrastructure errors are retryable.** A dropped connection, a server shutting down,
  a serialization failure or deadlock, an exhausted pool: :class:`Unavailable`, which
  Dramatiq retries; the ledger makes the retry apply the command exactly once.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import psycopg
import psycopg_pool
from psycopg.rows import RowMaker

from shared.errors import Unavailable
from shared.store import postgres_schema, postgres_search, secrets_at_rest
from shared.store.interface import TABLES, Cursor, Params, Store, Tx

#: Advisory lock key of write transactions (an arbitrary 64-bit constant: "jobordre").
WRITE_LOCK = 0x6A6F626F72647265 & 0x7FFF_FFFF_FFFF_FFFF
#: How long a thread waits for a pooled connection before reporting unavailable, in ms.
POOL_TIMEOUT_MS = 10_000
#: How long a new connection may take to open, in seconds (libpq's unit).
CONNECT_TIMEOUT_S = 5


#: What begins a write transaction: BEGIN and the write lock, in one round trip.
_BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"


class PgRow:
    """A result row that answers ``row["name"]`` and ``row[0]``, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._index[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        """The column names, in order (``dict(row)`` uses them)."""
        return list(self._index)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))!r})"


def pg_row(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    """psycopg row factory making :class:`PgRow` rows."""
    names = [column.name for column in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}
    return lambda values: PgRow(values, index)


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """The shared dialect's ``?`` placeholders as psycopg's ``%s`` (``%`` escaped).

    Quoted literals and identifiers are copied as they are but for ``%``, so ``'?'`` in
    ``COALESCE(kind, '?')`` stays a question mark.
    """
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if char == "%":
            out.append("%%")
        elif quote is not None:
            out.append(char)
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


def unavailable(error: psycopg.Error) -> Unavailable:
    """The retryable error for a PostgreSQL failure that is not the command's fault."""
    what = type(error).__name__
    return Unavailable(f"the PostgreSQL store is unavailable ({what}); the command will be retried")


#: psycopg errors that say nothing about the command: the server, the network, the pool,
#: or a concurrent transaction (SQLSTATE class 40, 08, 57) - retry.
RETRYABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg_pool.PoolTimeout)


class _Rows:
    """A finished result: the rows fetched, for statements run outside a transaction."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PostgresTx(Tx):
    """One pooled connection inside one transaction."""

    engine = "postgres"
    #: Events are never deleted: the largest seq is the highest given out.
    last_event_seq_sql = "SELECT COALESCE(MAX(seq), 0) FROM events"

    def __init__(self, conn: psycopg.Connection[PgRow], memo: dict[str, Any] | None = None) -> None:
        self.conn = conn
        self.memo = memo if memo is not None else {}

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement of the shared dialect."""
        try:
            return cast(Cursor, self.conn.execute(to_pyformat(sql), params))
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per parameter row (pipelined by psycopg)."""
        if not rows:
            return
        try:
            with self.conn.cursor() as cursor:
                cursor.executemany(to_pyformat(sql), rows)
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error

    def columns(self, table: str) -> list[str]:
        """The table's columns but generated ones (``orders.search``), in order."""
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = ? AND is_generated = 'NEVER'"
            " ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        return [str(row[0]) for row in rows]

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """COPY FROM STDIN: an order of magnitude faster than INSERTs."""
        count = 0
        try:
            with (
                self.conn.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
                    count += 1
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error
        return count

    def next_event_seq(self) -> int:
        """``MAX(seq) + 1``: the write lock keeps every other writer out until COMMIT."""
        return self.last_event_seq() + 1

    def last_event_seq(self) -> int:
        """``MAX(seq)``: events are never deleted, so it is the highest seq given out."""
        row = self.execute(self.last_event_seq_sql).fetchone()
        return int(row[0])

    def search_ids(
        self, *, words: list[str], filters: dict[str, str], limit: int, offset: int
    ) -> tuple[int, list[int]]:
        """tsvector search; see :mod:`shared.store.postgres_search`."""
        try:
            return postgres_search.search_ids(
                self.conn, words=words, filters=filters, limit=limit, offset=offset
            )
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error


class _AutoTx(PostgresTx):
    """Single statements outside a transaction: each borrows a pooled connection."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self.memo = store.memo

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement; alone, it is atomic without BEGIN and COMMIT."""
        try:
            with self._store.pool.connection() as conn:
                cursor = conn.execute(to_pyformat(sql), params)
                rows = cursor.fetchall() if cursor.description else []
                return _Rows(rows, cursor.rowcount)
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row, in one write transaction."""
        with self._store.write() as tx:
            tx.executemany(sql, rows)

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """A copy in one write transaction of its own."""
        with self._store.write() as tx:
            return tx.bulk_insert(table, columns, rows)

    def next_event_seq(self) -> int:
        """Only a write transaction allocates a ``seq``."""
        raise RuntimeError("next_event_seq needs a write transaction: use store.write()")

    def next_event(self) -> tuple[int, str | None]:
        """Only a write transaction allocates a ``seq``."""
        raise RuntimeError("next_event needs a write transaction: use store.write()")

    def search_ids(
        self, *, words: list[str], filters: dict[str, str], limit: int, offset: int
    ) -> tuple[int, list[int]]:
        """A search in its own read transaction."""
        with self._store.read() as tx:
            return tx.search_ids(words=words, filters=filters, limit=limit, offset=offset)


class PostgresStore(Store):
    """A PostgreSQL database holding what :class:`shared.store.SqliteStore` holds."""

    engine = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        migrate: bool = True,
        secrets_key_file: Path | None = None,
    ) -> None:
        """``secrets_key_file``: the key file the signing secrets are wrapped under
        (:mod:`shared.store.secrets_at_rest`), the same on every host; None keeps them
        unwrapped."""
        self.url = url
        self.memo: dict[str, Any] = {
            secrets_at_rest.MEMO: secrets_at_rest.SecretsKey(secrets_key_file)
        }
        self._auto = _AutoTx(self)
        try:
            # One direct connection first: a wrong URL, password or database fails now,
            # with libpq's reason, instead of as a pool timeout after retries.
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as error:
            reason = str(error).replace(url, self.describe()).strip().splitlines()[-1]
            raise Unavailable(
                f"cannot connect to PostgreSQL at {self.describe()} ({reason}): start it, "
                "or fix JOBORDRE_DATABASE_URL"
            ) from None
        self.pool: psycopg_pool.ConnectionPool[psycopg.Connection[PgRow]] = (
            psycopg_pool.ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=POOL_TIMEOUT_MS / 1000,
                kwargs={
                    "autocommit": True,
                    "row_factory": pg_row,
                    "connect_timeout": CONNECT_TIMEOUT_S,
                    "application_name": "jobordre",
                },
                open=False,
                name="jobordre",
            )
        )
        try:
            self.pool.open(wait=True, timeout=POOL_TIMEOUT_MS / 1000)
        except psycopg_pool.PoolTimeout as error:
            self.pool.close()
            raise Unavailable(
                f"cannot connect to PostgreSQL at {self.describe()}: start it, or fix "
                "JOBORDRE_DATABASE_URL"
            ) from error
        if migrate:
            self.migrate()

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[PostgresTx]:
        """A transaction begun by ``begin`` (one round trip, however many statements).

        BEGIN and COMMIT are sent by hand rather than through psycopg's transaction
        blocks, which cost a round trip each for BEGIN, SET TRANSACTION and the lock: on a
        busy host every round trip is a context switch to the server and back.
        """
        try:
            with self.pool.connection() as conn:
                committed = False
                try:
                    conn.execute(begin.encode())
                    yield PostgresTx(conn, self.memo)
                    conn.execute(b"COMMIT")
                    committed = True
                finally:
                    # Whatever ended the scope (an error, or an asynchronous exception such
                    # as a time limit), the transaction must not outlive it: it would hold
                    # the write lock. A broken connection is discarded by the pool.
                    if not committed and not conn.closed:
                        with contextlib.suppress(psycopg.Error):
                            conn.execute(b"ROLLBACK")
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error

    @contextmanager
    def write(self) -> Iterator[PostgresTx]:
        """One write transaction, after every other host's (see the module docstring)."""
        with self._transaction(_BEGIN_WRITE) as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator[PostgresTx]:
        """One read transaction on one snapshot."""
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ") as tx:
            yield tx

    def check_writable(self, timeout_ms: int) -> None:
        """Take the write lock and release it unused; :class:`Unavailable` if a writer holds
        it longer than ``timeout_ms`` or the database is read-only (a standby)."""
        with self._transaction(
            f"BEGIN; SET LOCAL lock_timeout = {int(timeout_ms)};"
            f" SELECT pg_advisory_xact_lock({WRITE_LOCK})"
        ) as tx:
            if tx.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                raise Unavailable(
                    f"{self.describe()} is a standby (read-only): point JOBORDRE_DATABASE_URL "
                    "at the primary"
                )

    def connection(self) -> Tx:
        """Single statements, each in its own transaction on a pooled connection."""
        return self._auto

    def migrate(self) -> int:
        """Run :mod:`shared.store.postgres_schema`'s migrations under a session lock."""
        try:
            with self.pool.connection() as conn:
                version = postgres_schema.migrate(conn)
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error
        secrets_at_rest.wrap_in(self)
        return version

    def schema_version(self) -> int:
        """The highest migration applied."""
        with self.pool.connection() as conn:
            return postgres_schema.version(conn)

    def describe(self) -> str:
        """The URL without its password."""
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        host, port, name = info.get("host", "localhost"), info.get("port", 5432), info.get("dbname")
        return f"postgresql://{info.get('user', '')}@{host}:{port}/{name}"

    def tables(self) -> list[str]:
        """The data tables this store has, in foreign-key order."""
        present = {
            str(row[0])
            for row in self.connection().execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
        return [name for name in TABLES if name in present]

    def restart_ids(self) -> None:
        """Move every identity column's sequence past the largest id copied in."""
        with self.write() as tx:
            identities = tx.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND is_identity = 'YES'"
            ).fetchall()
            for table, column in identities:
                tx.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"  # noqa: S608
                    f" (SELECT COALESCE(MAX({column}), 0) + 1 FROM {table}), false)"
                )

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()
