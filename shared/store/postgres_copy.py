"""Loading a whole store into an empty PostgreSQL database fast, in one transaction
(:func:`shared.store.copy.copy_store`'s PostgreSQL side; docs/scaling-out-postgres.md has
the method's measurements).

* **Secondary indexes and foreign keys are built after the load.** Before it, every index
  of the copied tables that backs no constraint and is not unique, and every foreign key
  between them, is recorded as the catalog defines it (``pg_get_indexdef``,
  ``pg_get_constraintdef``: whatever a migration made them) and dropped; after it they are
  created again: one sort per index instead of an insertion per row, one join per foreign
  key instead of a lookup per row. Primary keys and unique constraints stay: they guard the
  load itself, and a foreign key may depend on them.
* **Computed columns are computed by the load.** The search vector (a generated column
  until migration 18, a trigger's since) is not in the copied columns (:meth:`Tx.columns`
  leaves it out) and PostgreSQL computes it for each row COPY writes: computing it after
  the load would rewrite the whole table once more.
* **Binary COPY** of each table, its columns typed from the catalog
  (``copy.set_types``): no text rendering and parsing of each value.
* **Long values are compressed with lz4** where the server has it (``SET LOCAL
  default_toast_compression``, for the copy's transaction alone): the search vector makes
  an order's row long enough to be compressed, and pglz costs more CPU than lz4. Both
  read back alike; rows written later are compressed as the server is configured.
* **The tables are truncated first** (they are empty but for the rows migrations seed), so
  COPY writes the rows already frozen (``FREEZE``): no later pass of VACUUM rewrites every
  page to freeze them, and the verification's read does not dirty them.
* **Verified in the database.** A table's summary (rows, and the sum of per-row SHA-256
  digests of :func:`shared.store.copy.render`'s rendering) is computed by one aggregate
  query, each row's digest once (``OFFSET 0`` keeps the planner from inlining it into
  each of the sums).

A role that does not own the tables may not drop indexes, truncate or ANALYZE: it gets a
plain binary COPY into the indexed tables instead, verified the same.

Everything happens in the caller's write transaction: a failure anywhere, a verification
that differs included, rolls it back and leaves the target as it was, empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

#: Memory each index build of the copy may use (``maintenance_work_mem``, a PostgreSQL
#: size): sorts larger than the server's default stay in memory.
MAINTENANCE_WORK_MEM = "512MB"
#: How the copy's transaction compresses values too long for a row (TOAST), where the
#: server has it: lz4 costs a fraction of the CPU of PostgreSQL's own pglz, both ways.
TOAST_COMPRESSION = "lz4"
#: A copied table smaller than this (pages) is not analyzed (:func:`finish`): PostgreSQL
#: takes a never-analyzed table for at least 10 pages, which keeps lookups by key on the
#: index.
ANALYZE_MIN_PAGES = 10
#: The SHA-256 digest is summed in pieces of this many hex digits (32 bits): each piece's
#: sum over any number of rows fits PostgreSQL's ``numeric`` exactly.
_PIECE_HEX = 8
#: Pieces of a digest (64 hex digits).
_PIECES = 64 // _PIECE_HEX


@dataclass
class Deferred:
    """What :func:`prepare` dropped, to be made again by :func:`finish`."""

    #: ``CREATE INDEX`` statements, as the catalog renders them.
    indexes: list[str] = field(default_factory=list)
    #: (table, constraint name, definition) of the foreign keys.
    foreign_keys: list[tuple[str, str, str]] = field(default_factory=list)
    #: Whether the copying role owns the tables: if not, nothing is dropped or truncated
    #: (it may not), and the load is a plain COPY into the indexed tables.
    owned: bool = True


def _execute(conn: psycopg.Connection[Any], statement: sql.SQL | sql.Composed | str) -> None:
    conn.execute(sql.SQL(statement) if isinstance(statement, str) else statement)


def lock(conn: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    """Take ``tables`` for this transaction alone (nobody writes them until it ends), so
    a check that they are empty holds until the load."""
    # The pool's sessions end a transaction idle for seconds (a frozen worker's locks); this
    # one waits for its source between statements, which may take longer.
    _execute(conn, "SET LOCAL idle_in_transaction_session_timeout = 0")
    _execute(
        conn,
        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in tables)
        ),
    )


def use_fast_toast_compression(conn: psycopg.Connection[Any], *, local: bool) -> None:
    """:data:`TOAST_COMPRESSION` for the values written next, where the server has it: for
    the transaction (``local``) or the session."""
    compressions = conn.execute(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
    ).fetchone()
    if compressions is not None and TOAST_COMPRESSION in (compressions[0] or []):
        _execute(
            conn,
            sql.SQL("SET {} default_toast_compression = {}").format(
                sql.SQL("LOCAL" if local else "SESSION"), sql.Literal(TOAST_COMPRESSION)
            ),
        )


def prepare(conn: psycopg.Connection[Any], tables: Sequence[str]) -> Deferred:
    """Set the transaction (``tables`` taken by :func:`lock`) up for a bulk load of
    ``tables`` and empty them: drop their secondary indexes and foreign keys (kept in the
    returned :class:`Deferred`)."""
    _execute(
        conn,
        sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(MAINTENANCE_WORK_MEM)),
    )
    use_fast_toast_compression(conn, local=True)
    deferred = Deferred()
    owner = conn.execute(
        "SELECT bool_and(pg_has_role(relowner, 'USAGE')) FROM pg_class"
        " WHERE relnamespace = current_schema()::regnamespace AND relname = ANY(%s)",
        (list(tables),),
    ).fetchone()
    if owner is None or not owner[0]:
        deferred.owned = False
        for table in reversed(tables):
            _execute(conn, sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
        return deferred
    foreign = conn.execute(
        "SELECT t.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
        " JOIN pg_class t ON t.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid"
        " WHERE k.contype = 'f' AND t.relnamespace = current_schema()::regnamespace"
        " AND t.relname = ANY(%s) AND r.relname = ANY(%s) ORDER BY t.relname, k.conname",
        (list(tables), list(tables)),
    ).fetchall()
    for table, name, definition in foreign:
        deferred.foreign_keys.append((str(table), str(name), str(definition)))
        _execute(
            conn,
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            ),
        )
    indexes = conn.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY(%s)"
        " AND NOT x.indisunique AND NOT x.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)"
        " ORDER BY t.relname, i.relname",
        (list(tables),),
    ).fetchall()
    for name, definition in indexes:
        deferred.indexes.append(str(definition))
        _execute(conn, sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    # Emptied in this transaction, so COPY may write its rows frozen.
    _execute(
        conn,
        sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(t) for t in tables)),
    )
    return deferred


def column_types(conn: psycopg.Connection[Any], table: str, columns: Sequence[str]) -> list[int]:
    """The type oids of ``table``'s ``columns``, in their order."""
    rows = conn.execute(
        "SELECT a.attname, a.atttypid FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(quote_ident(%s)) AND a.attnum > 0"
        " AND NOT a.attisdropped",
        (table,),
    ).fetchall()
    types = {str(row[0]): int(row[1]) for row in rows}
    return [types[column] for column in columns]


def load(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    freeze: bool = True,
) -> int:
    """COPY ``rows`` into ``table`` (emptied by :func:`prepare`) in binary; how many.
    ``freeze``: the rows written frozen (the table was truncated in this transaction)."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY{})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", FREEZE" if freeze else ""),
    )
    types = column_types(conn, table, columns)
    count = 0
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def finish(conn: psycopg.Connection[Any], deferred: Deferred, tables: Sequence[str]) -> None:
    """Build the indexes and foreign keys :func:`prepare` dropped; ANALYZE those of
    ``tables`` that hold :data:`ANALYZE_MIN_PAGES` pages or more, so the first queries on
    the copy are planned with its statistics.

    A smaller table is left never analyzed, and the planner takes it for that many pages:
    a lookup by key goes through the index. Analyzed, an empty or nearly empty table is
    planned as the page or two it is, a scan of the whole table is the cheaper plan for a
    lookup by key, and a prepared statement keeps that plan while the table grows, until
    autovacuum analyzes it again: a fresh copy's ledger and event log were scanned whole by
    every command.
    """
    for definition in deferred.indexes:
        _execute(conn, definition)
    for table, name, definition in deferred.foreign_keys:
        _execute(
            conn,
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
            ),
        )
    if not deferred.owned:
        return  # ANALYZE too is the owner's; autovacuum will do it
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'"
        " AND relnamespace = current_schema()::regnamespace"
        " AND pg_relation_size(oid) >= %s * current_setting('block_size')::int",
        [list(tables), ANALYZE_MIN_PAGES],
    ).fetchall()
    found = {row[0] for row in rows}
    grown = [table for table in tables if table in found]
    if grown:
        _execute(
            conn,
            sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(sql.Identifier(t) for t in grown)),
        )


def _rendering(columns: Sequence[str]) -> sql.Composable:
    """SQL computing :func:`shared.store.copy.render` of a row: per column ``N`` for NULL,
    else ``V``, the text's length in characters, ``:`` and the text."""
    parts = [
        sql.SQL("COALESCE('V' || length({c}::text) || ':' || {c}::text, 'N')").format(
            c=sql.Identifier(column)
        )
        for column in columns
    ]
    return sql.SQL(" || ").join(parts) if parts else sql.SQL("''")


def summary(conn: psycopg.Connection[Any], table: str, columns: Sequence[str]) -> tuple[int, int]:
    """(rows, sum of the rows' SHA-256 digests modulo 2**256) of ``table`` over ``columns``,
    computed by the server: the digests are summed in 32-bit pieces, put together here."""
    pieces = sql.SQL(", ").join(
        sql.SQL("COALESCE(SUM(('x' || substr(h, {}, {}))::bit(32)::bigint), 0)").format(
            sql.Literal(1 + i * _PIECE_HEX), sql.Literal(_PIECE_HEX)
        )
        for i in range(_PIECES)
    )
    statement = sql.SQL(
        "SELECT COUNT(*), {pieces} FROM (SELECT encode(sha256(convert_to({rendering},"
        " 'UTF8')), 'hex') AS h FROM {table} OFFSET 0) AS digests"
    ).format(pieces=pieces, rendering=_rendering(columns), table=sql.Identifier(table))
    row = conn.execute(statement).fetchone()
    if row is None:
        raise RuntimeError(f"no summary of table {table}")
    total = 0
    for i, piece in enumerate(row[1:]):
        total += int(piece) << (32 * (_PIECES - 1 - i))
    return int(row[0]), total % 2**256


def restart_ids(conn: psycopg.Connection[Any]) -> None:
    """Move every identity column's sequence past the largest id copied in, in the
    transaction of ``conn`` (:meth:`shared.store.postgres.PostgresStore.restart_ids`
    runs it in one of its own)."""
    identities = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in identities:
        conn.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({t}, {c}),"
                " (SELECT COALESCE(MAX({ci}), 0) + 1 FROM {ti}), false)"
            ).format(
                t=sql.Literal(sql.Identifier(table).as_string(conn)),
                c=sql.Literal(str(column)),
                ci=sql.Identifier(column),
                ti=sql.Identifier(table),
            )
        )
