"""Copying a whole store into an empty one: how the embedded SQLite store grows into
PostgreSQL (``jobordre store copy --to URL``).

Every table is copied with its ids as they are (orders, placements, every placement-log
entry, events with their ``seq``, the ledger, keys, the access log, dead letters, follows),
in one write transaction on the target: a copy that fails leaves the target empty. Then
each table is checked: the same number of rows and the same checksum on both sides. The
checksum is a sum of per-row SHA-256 digests modulo 2**256, so it does not depend on the
order rows come back in (the engines' collations may differ) and any row missing, added or
changed shows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from shared.errors import InvalidInput
from shared.store import secrets_at_rest
from shared.store.interface import Store, Tx

#: The checksum's modulus: a sum of SHA-256 values.
_MODULUS = 2**256

#: Tables a new store's migrations fill (its first event-log epoch, the relay's mark): the
#: copy replaces their rows with the source's, so the copy keeps the log's identity and
#: readers' cursors stay valid, and its relay goes on where the source's stopped.
SEEDED = ("event_log_epochs", "relay_mark")


def _row_digest(values: Sequence[Any]) -> int:
    encoded = json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(encoded.encode()).digest(), "big")


def table_summary(tx: Tx, table: str, columns: Sequence[str]) -> dict[str, Any]:
    """Rows and checksum of ``table`` over ``columns``."""
    total, rows = 0, 0
    for row in tx.execute(f"SELECT {', '.join(columns)} FROM {table}"):  # noqa: S608
        total = (total + _row_digest(list(row))) % _MODULUS
        rows += 1
    return {"rows": rows, "checksum": f"{total:064x}"}


def _rows(tx: Tx, table: str, columns: Sequence[str]) -> Iterator[Sequence[Any]]:
    for row in tx.execute(f"SELECT {', '.join(columns)} FROM {table}"):  # noqa: S608
        yield list(row)


def _check_empty(target: Store) -> None:
    tx = target.connection()
    for table in target.tables():
        if table in SEEDED:
            continue
        if tx.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
            raise InvalidInput(
                f"the target store {target.describe()} is not empty (table {table} has rows): "
                "copy into a new, empty database",
                field="to",
            )


def copy_store(source: Store, target: Store) -> dict[str, dict[str, Any]]:
    """Copy ``source`` into the empty ``target``; returns rows and checksums per table.

    Both must be at the same schema version (opening a store migrates it). Raises
    :class:`InvalidInput` for a non-empty target or different versions, and
    :class:`RuntimeError` if a table's count or checksum differs after the copy.
    """
    if source.schema_version() != target.schema_version():
        raise InvalidInput(
            f"the source is at schema version {source.schema_version()} and the target at "
            f"{target.schema_version()}: run `jobordre migrate` on both with this jobordre",
            field="to",
        )
    _check_empty(target)
    tables = [table for table in source.tables() if table in set(target.tables())]
    report: dict[str, dict[str, Any]] = {}
    with source.read() as reading, target.write() as writing:
        for table in tables:
            if table in SEEDED:
                writing.execute(f"DELETE FROM {table}")  # noqa: S608
            wanted = set(writing.columns(table))
            columns = [column for column in reading.columns(table) if column in wanted]
            writing.bulk_insert(table, columns, _rows(reading, table, columns))
            report[table] = {"columns": columns, **table_summary(reading, table, columns)}
    target.restart_ids()
    with target.read() as checking:
        for table, expected in report.items():
            found = table_summary(checking, table, expected["columns"])
            if found != {key: expected[key] for key in ("rows", "checksum")}:
                raise RuntimeError(
                    f"table {table} differs after the copy ({expected['rows']} rows in the "
                    f"source, {found['rows']} in the target, or their checksums): the target "
                    "is not a faithful copy; drop it and copy again"
                )
            del expected["columns"]
    _rewrap_secrets(source, target)
    return report


def _rewrap_secrets(source: Store, target: Store) -> None:
    """The signing secrets, copied as the source wrapped them, wrapped as the target keeps
    them (:mod:`shared.store.secrets_at_rest`): under its key file, or none."""
    with target.write() as writing:
        from_source = secrets_at_rest.of_store(source)
        to_target = secrets_at_rest.of(writing)
        rows = writing.execute("SELECT key_id, principal, secret FROM signing_keys").fetchall()
        rewrapped = []
        for key_id, principal, kept in rows:
            secret = from_source.unwrap(principal, key_id, kept)
            rewrapped.append((to_target.wrap(principal, key_id, secret), key_id))
        writing.executemany("UPDATE signing_keys SET secret = ? WHERE key_id = ?", rewrapped)
