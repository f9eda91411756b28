"""Copying a whole store into an empty one: how the embedded SQLite store grows into
PostgreSQL (``jobordre store copy --to URL``).

Every table is copied with its ids as they are (orders, placements, every placement-log
entry, events with their ``seq``, the ledger, keys, the access log, dead letters, follows),
then checked, all in one write transaction on the target: a copy that fails, or that does
not verify, is rolled back and leaves the target empty. A target with rows is refused (the
check is made inside that transaction, its tables locked on PostgreSQL).

The check: each table has the same number of rows and the same checksum on both sides. The
checksum is a sum of per-row SHA-256 digests modulo 2**256, so it does not depend on the
order rows come back in (the engines' collations may differ) and any row missing, added or
changed shows. A row's digest is that of :func:`render`: per column ``N`` for NULL, else
``V``, the length of the value's text in characters, ``:`` and the text (an integer's
decimal digits). The source's digests are computed from the rows as they are sent; the
target's by the target itself where it can (PostgreSQL: :mod:`.postgres_copy`), from the
rows it then holds.

Into PostgreSQL the load is a binary COPY per table, its secondary indexes and foreign keys
built after the load (:mod:`.postgres_copy`); into another engine, :meth:`Tx.bulk_insert`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from shared.errors import InvalidInput
from shared.store import secrets_at_rest
from shared.store.interface import Store, Tx
from shared.store.sqlite import SqliteTx

if TYPE_CHECKING:
    import psycopg

#: The checksum's modulus: a sum of SHA-256 values.
_MODULUS = 2**256
#: Source rows fetched at a time.
FETCH_ROWS = 10_000

#: Tables a new store's migrations fill (its first event-log epoch, the relay's mark): the
#: copy replaces their rows with the source's, so the copy keeps the log's identity and
#: readers' cursors stay valid, and its relay goes on where the source's stopped.
SEEDED = ("event_log_epochs", "relay_mark")


def render(values: Sequence[Any]) -> bytes:
    """The bytes a row's digest is taken of (see the module docstring)."""
    parts = []
    for value in values:
        if value is None:
            parts.append("N")
        else:
            text = value if isinstance(value, str) else str(value)
            parts.append(f"V{len(text)}:{text}")
    return "".join(parts).encode()


def _row_digest(values: Sequence[Any]) -> int:
    return int.from_bytes(hashlib.sha256(render(values)).digest(), "big")


class _Fetching(Protocol):
    def fetchmany(self, size: int) -> list[Any]: ...


def _select(table: str, columns: Sequence[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"  # noqa: S608 - names from the catalog


def _rows(tx: Tx, table: str, columns: Sequence[str]) -> Iterator[Sequence[Any]]:
    """``table``'s rows over ``columns``, fetched :data:`FETCH_ROWS` at a time."""
    conn = _server(tx)
    if isinstance(tx, SqliteTx):
        # Plain tuples: a sqlite3.Row per row costs more and is not needed here.
        result: _Fetching = tx.raw.cursor()
        cast(Any, result).row_factory = None
        cast(Any, result).execute(_select(table, columns))
    elif conn is not None:
        # A server-side cursor: a client-side one would hold the whole table in memory.
        cursor = conn.cursor(name=f"jobordre_copy_{table}")
        cursor.itersize = FETCH_ROWS
        cursor.execute(_select(table, columns))
        try:
            while chunk := cursor.fetchmany(FETCH_ROWS):
                yield from chunk
        finally:
            cursor.close()
        return
    else:
        result = cast(_Fetching, tx.execute(_select(table, columns)))
    while chunk := result.fetchmany(FETCH_ROWS):
        yield from chunk


class _Tally:
    """Rows and the sum of their digests, of the rows passed through :meth:`through`."""

    def __init__(self) -> None:
        self.rows = 0
        self.total = 0

    def through(self, rows: Iterator[Sequence[Any]]) -> Iterator[Sequence[Any]]:
        for row in rows:
            self.rows += 1
            self.total += _row_digest(row)
            yield row

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": f"{self.total % _MODULUS:064x}"}


def _server(tx: Tx) -> psycopg.Connection[Any] | None:
    """The PostgreSQL connection of ``tx``, out of pipeline mode; None on another engine
    (or outside a transaction)."""
    if tx.engine != "postgres":
        return None
    # Imported here: psycopg is loaded only by processes that use PostgreSQL.
    from shared.store.postgres import PostgresTx, PostgresWriteTx

    conn = getattr(tx, "conn", None) if isinstance(tx, PostgresTx) else None
    if conn is not None and isinstance(tx, PostgresWriteTx):
        tx.leave_pipeline()
    return conn


def table_summary(tx: Tx, table: str, columns: Sequence[str]) -> dict[str, Any]:
    """Rows and checksum of ``table`` over ``columns`` (computed by PostgreSQL itself on a
    PostgreSQL transaction)."""
    conn = _server(tx)
    if conn is not None:
        from shared.store import postgres_copy

        rows, total = postgres_copy.summary(conn, table, columns)
        return {"rows": rows, "checksum": f"{total:064x}"}
    tally = _Tally()
    for _ in tally.through(_rows(tx, table, columns)):
        pass
    return tally.summary()


def _check_empty(tx: Tx, target: Store, tables: Sequence[str]) -> None:
    for table in tables:
        if table in SEEDED:
            continue
        if tx.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
            raise InvalidInput(
                f"the target store {target.describe()} is not empty (table {table} has rows): "
                "copy into a new, empty database",
                field="to",
            )


def copy_store(
    source: Store, target: Store, *, seconds: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Copy ``source`` into the empty ``target``; returns rows and checksums per table.

    Both must be at the same schema version (opening a store migrates it). Raises
    :class:`InvalidInput` for a non-empty target or different versions, and
    :class:`RuntimeError` if a table's count or checksum differs after the copy (which is
    then rolled back). ``seconds``, if given, gets how long each phase took: ``load`` (per
    table), ``indexes`` (built after the load), ``verify``, ``total``.
    """
    if source.schema_version() != target.schema_version():
        raise InvalidInput(
            f"the source is at schema version {source.schema_version()} and the target at "
            f"{target.schema_version()}: run `jobordre migrate` on both with this jobordre",
            field="to",
        )
    present = target.tables()
    # Refused at once, without waiting for the locks below (a store in use).
    _check_empty(target.connection(), target, present)
    tables = [table for table in source.tables() if table in set(present)]
    began = time.perf_counter()
    phases: dict[str, Any] = {"load": {}}
    report: dict[str, dict[str, Any]] = {}
    with source.read() as reading, target.write() as writing:
        columns_of: dict[str, list[str]] = {}
        for table in tables:
            wanted = set(writing.columns(table))
            columns_of[table] = [c for c in reading.columns(table) if c in wanted]
        conn = _server(writing)
        if conn is not None:
            from shared.store import postgres_copy

            postgres_copy.lock(conn, tables)
        _check_empty(writing, target, present)
        conn = _server(writing)
        deferred = postgres_copy.prepare(conn, tables) if conn is not None else None
        owned = deferred is not None and deferred.owned
        for table in tables:
            started = time.perf_counter()
            if table in SEEDED and conn is None:
                writing.execute(f"DELETE FROM {table}")  # noqa: S608
            columns = columns_of[table]
            tally = _Tally()
            rows = tally.through(_rows(reading, table, columns))
            if conn is not None:
                postgres_copy.load(conn, table, columns, rows, freeze=owned)
            else:
                writing.bulk_insert(table, columns, rows)
            report[table] = tally.summary()
            phases["load"][table] = time.perf_counter() - started
        started = time.perf_counter()
        if conn is not None and deferred is not None:
            postgres_copy.finish(conn, deferred, tables)
        phases["indexes"] = time.perf_counter() - started
        started = time.perf_counter()
        for table, expected in report.items():
            found = table_summary(writing, table, columns_of[table])
            if found != expected:
                raise RuntimeError(
                    f"table {table} differs after the copy ({expected['rows']} rows in the "
                    f"source, {found['rows']} in the target, or their checksums): the target "
                    "is not a faithful copy; the copy was rolled back, so the target is "
                    "empty again: copy again"
                )
        phases["verify"] = time.perf_counter() - started
        _rewrap_secrets(source, writing)
        conn = _server(writing)
        if conn is not None:
            postgres_copy.restart_ids(conn)
    if conn is None:
        target.restart_ids()
    phases["total"] = time.perf_counter() - began
    if seconds is not None:
        seconds.update(phases)
    return report


def _rewrap_secrets(source: Store, writing: Tx) -> None:
    """The signing secrets, copied as the source wrapped them, wrapped as the target keeps
    them (:mod:`shared.store.secrets_at_rest`): under its key file, or none."""
    from_source = secrets_at_rest.of_store(source)
    to_target = secrets_at_rest.of(writing)
    rows = writing.execute("SELECT key_id, principal, secret FROM signing_keys").fetchall()
    rewrapped = []
    for key_id, principal, kept in rows:
        secret = from_source.unwrap(principal, key_id, kept)
        rewrapped.append((to_target.wrap(principal, key_id, secret), key_id))
    writing.executemany("UPDATE signing_keys SET secret = ? WHERE key_id = ?", rewrapped)
