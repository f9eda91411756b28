"""The foundation's store: one engine-neutral interface, two engines.

:class:`Store` and :class:`Tx` (:mod:`shared.store.interface`) are what the domain modules
talk to; :mod:`shared.store.sqlite` (the embedded default) and
:mod:`shared.store.postgres` (several hosts, ``JOBORDRE_DATABASE_URL``) implement them. The
row-level functions every engine shares (orders, the ledger, dead letters) are written once,
in the dialect both speak, and re-exported here.
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings
from shared.store.dead_letters import (
    DEAD_LETTER_COLUMNS,
    count_dead_letters,
    dead_letter,
    dead_letter_original,
    dead_letters_to_retry,
    find_dead_letters,
    list_dead_letters,
    mark_dead_letter_retried,
    ops_audit,
    purge_dead_letters,
    record_dead_letter,
    record_ops_action,
)
from shared.store.interface import Params, Result, Row, Store, Tx
from shared.store.ledger import (
    ANONYMISED_DIGEST,
    anonymise_replies,
    claim_command,
    claim_read,
    finish_command,
    forget_rejection,
    ledger_entry,
    record_command,
)
from shared.store.order_table import (
    StoredOrder,
    insert_order,
    load_order,
    load_stored,
    next_order_id,
    query_order,
    save_order,
    stored_order,
)
from shared.store.sqlite import SqliteStore

#: URL schemes that select the PostgreSQL engine.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

__all__ = [
    "ANONYMISED_DIGEST",
    "DEAD_LETTER_COLUMNS",
    "Params",
    "Result",
    "Row",
    "SqliteStore",
    "Store",
    "StoredOrder",
    "Tx",
    "anonymise_replies",
    "claim_command",
    "claim_read",
    "count_dead_letters",
    "dead_letter",
    "dead_letter_original",
    "dead_letters_to_retry",
    "find_dead_letters",
    "finish_command",
    "forget_rejection",
    "insert_order",
    "ledger_entry",
    "list_dead_letters",
    "load_order",
    "load_stored",
    "mark_dead_letter_retried",
    "next_order_id",
    "open_store",
    "open_url",
    "ops_audit",
    "purge_dead_letters",
    "query_order",
    "record_command",
    "record_dead_letter",
    "record_ops_action",
    "save_order",
    "stored_order",
]


def open_url(
    url: str | Path,
    *,
    busy_timeout_ms: int = 10_000,
    pool_size: int = 10,
    migrate: bool = True,
    secrets_key_file: Path | None = None,
    write_transactions: int | None = None,
) -> Store:
    """The store at ``url``: a ``postgresql://`` URL, or else the path of a SQLite file.
    ``secrets_key_file``: where its signing secrets are wrapped (:mod:`secrets_at_rest`);
    ``write_transactions``: PostgreSQL write transactions one process runs at once (None:
    the engine's default)."""
    if isinstance(url, str) and url.startswith(POSTGRES_SCHEMES):
        # Imported here: psycopg is loaded only by processes that use PostgreSQL.
        from shared.store.postgres import WRITE_CONCURRENCY, PostgresStore

        return PostgresStore(
            url,
            pool_size=pool_size,
            migrate=migrate,
            secrets_key_file=secrets_key_file,
            write_concurrency=write_transactions or WRITE_CONCURRENCY,
        )
    return SqliteStore(
        Path(url),
        busy_timeout_ms=busy_timeout_ms,
        migrate=migrate,
        secrets_key_file=secrets_key_file,
    )


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The store the settings name: ``JOBORDRE_DATABASE_URL`` if set, else SQLite at
    ``JOBORDRE_DB`` (default ``<home>/jobordre.db``)."""
    return open_url(
        settings.database_url or settings.db_path,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pool_size=settings.database_pool_size,
        migrate=migrate,
        secrets_key_file=settings.store_secrets_key_file,
        write_transactions=settings.database_write_transactions,
    )
