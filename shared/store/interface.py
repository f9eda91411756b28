"""The engine-neutral store: what the domain modules and the foundation talk to.

The domain modules (orders, placements, the logs ...) write their SQL once, in the dialect
both engines share: ``?`` placeholders, ``INSERT ... ON CONFLICT DO NOTHING``, ``RETURNING
id``, ISO-8601 text for times. What the engines do differently is a method here:

* :meth:`Store.write` - one write transaction: a command, its events, access-log rows and
  ledger row commit together or not at all, and event ``seq`` grows gap-free in commit
  order. SQLite has one writer at a time (``BEGIN IMMEDIATE``); PostgreSQL runs writers
  side by side, each order's writers one after the other (:attr:`Tx.lock_suffix`), and
  serialises only the numbering of events just before COMMIT.
* :meth:`Tx.append_event` - an event into the outbox, numbered by the engine, and
  :meth:`Tx.last_event_seq` - the highest ``seq`` given out (the event log's end).
* :meth:`Tx.search_ids` - full-text search (FTS5 or tsvector), same semantics.
* :meth:`Store.migrate` - the engine's numbered migrations, safe when several start at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple, Protocol

#: The data tables of both engines, in an order that satisfies their foreign keys.
TABLES = (
    "orders",
    "placements",
    "placement_log",
    "events",
    "event_audience",
    "event_log_epochs",
    "relay_mark",
    "signing_keys",
    "public_keys",
    "signed_commands",
    "access_log",
    "foundation_secrets",
    "follows",
    "commands",
    "reads",
    "dead_letters",
    "ops_audit",
)


#: Protocol 2 (docs/protocol.md § 14): the organisations' public keys (the store holds
#: nothing that can sign for them) and each version 2 command's signed envelope, kept so
#: that an access-log row can be proven to a third party. The same DDL on both engines.
PUBLIC_KEYS_DDL = """
CREATE TABLE IF NOT EXISTS public_keys (
    key_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    sign_public TEXT NOT NULL,
    seal_public TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS public_keys_by_principal ON public_keys (principal);
CREATE TABLE IF NOT EXISTS signed_commands (
    principal TEXT NOT NULL,
    command_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    envelope TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (principal, command_id)
);
"""

#: The event log's current epoch (the last by base seq, then ordinal; ordinals are unique):
#: what ``shared.eventlog.current_epoch`` reads, as a query of one value.
CURRENT_EPOCH_SQL = (
    "SELECT epoch FROM event_log_epochs ORDER BY base_seq DESC, ordinal DESC LIMIT 1"
)

#: The outbox row of one event, in the shared dialect (``seq`` given by the engine).
INSERT_EVENT_SQL = (
    "INSERT INTO events (seq, id, type, at, order_id, employer_cvr, header, order_doc,"
    " log_upto, command_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
#: Who may read one event.
INSERT_AUDIENCE_SQL = "INSERT INTO event_audience (organisation, seq) VALUES (?, ?)"


class NewEvent(NamedTuple):
    """One event for the outbox: everything but its ``seq`` and epoch, the engine's to give."""

    id: str
    type: str
    at: str
    order_id: int
    employer_cvr: str
    order_doc: str
    log_upto: int | None
    command_id: str | None
    #: The organisations (and/or the authorities' tag) that may read it.
    audience: list[str]
    #: The header's JSON text for a ``seq`` and an epoch: ``epoch`` is its last field.
    header: Callable[[int, str], str]


#: Parameters of one statement: positional for ``?``, or a mapping for ``:name``.
Params = Sequence[Any] | Mapping[str, Any]


class Row(Protocol):
    """One result row: by column name (``row["id"]``) or position (``row[0]``)."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Result(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Tx(ABC):
    """A connection inside one transaction (or, from :meth:`Store.connection`, outside)."""

    #: ``sqlite`` or ``postgres``.
    engine: str
    #: A query of one row and value: the highest ``seq`` given out (:meth:`last_event_seq`).
    last_event_seq_sql: str

    #: What a write transaction appends to a ``SELECT`` of rows it is about to change, so
    #: that concurrent writers of the same rows go one after the other: empty where the
    #: engine has one writer at a time (SQLite); ``FOR NO KEY UPDATE`` on PostgreSQL.
    lock_suffix = ""
    #: A query of one value: the id the next inserted order gets.
    next_order_id_sql = "SELECT COALESCE(MAX(id), 0) + 1 FROM orders"
    #: A query of one row: the ids the next placement and the next placement-log entry
    #: get. Read with the order they belong to, so that inserting them waits for nothing.
    next_placement_ids_sql = (
        "SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM placements),"
        " (SELECT COALESCE(MAX(id), 0) + 1 FROM placement_log)"
    )

    #: Whether a savepoint waits for its statements' results before it is released. An
    #: engine that sends statements ahead of their results (PostgreSQL) may release it
    #: at once when its caller says so, and report a failure found later as
    #: :class:`shared.errors.LateFailure`: one round trip a command less. Where statements
    #: run at once (SQLite) there is nothing to wait for.
    settle_each = True
    #: Savepoints open on this connection: each nested one gets its own name.
    _savepoints = 0
    #: Values that never change once committed (the foundation's secrets), shared by the
    #: transactions of one store: read once per process instead of once per command.
    memo: dict[str, Any]

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement of the shared dialect."""

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that an exception rolls back alone (and re-raises).

        Both engines speak ``SAVEPOINT``; on PostgreSQL it also clears the aborted state a
        failed statement leaves, so the transaction can go on.
        """
        self._savepoints += 1
        name = f"jobordre_{self._savepoints}"
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            self.execute(f"RELEASE SAVEPOINT {name}")
        finally:
            self._savepoints -= 1

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""

    @abstractmethod
    def columns(self, table: str) -> list[str]:
        """The stored columns of ``table`` (computed ones, like a search vector, left out)."""

    @abstractmethod
    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert many rows with their ids as given (a copy); returns how many."""

    @abstractmethod
    def next_event_seq(self) -> int:
        """The ``seq`` the next event gets; only inside :meth:`Store.write`."""

    def next_event(self) -> tuple[int, str | None]:
        """:meth:`next_event_seq` and the event log's current epoch (``None`` in a log
        without one), read in one statement: every write command records an event, and a
        statement costs more than the two lookups. Only inside :meth:`Store.write`."""
        row = self.execute(
            f"SELECT ({self.last_event_seq_sql}) + 1, ({CURRENT_EPOCH_SQL})"
        ).fetchone()
        return int(row[0]), row[1]

    def expect_one(self, cursor: Result, error: Callable[[], Exception]) -> None:
        """Raise ``error()`` unless the statement of ``cursor`` changed exactly one row.

        Checked at once here; an engine that sends statements ahead of their results
        checks it before the savepoint or transaction around the statement ends.
        """
        if cursor.rowcount != 1:
            raise error()

    def append_event(self, event: NewEvent) -> None:
        """Add ``event`` to the outbox with the next ``seq``; only inside :meth:`Store.write`.

        Here the ``seq`` is taken at once, for an engine with one writer at a time: no one
        else can take it before this transaction commits.
        """
        seq, epoch = self.next_event()
        if epoch is None:
            epoch = str(self.execute(CURRENT_EPOCH_SQL).fetchone()[0])
        self.execute(
            INSERT_EVENT_SQL,
            (
                seq,
                event.id,
                event.type,
                event.at,
                event.order_id,
                event.employer_cvr,
                event.header(seq, epoch),
                event.order_doc,
                event.log_upto,
                event.command_id,
            ),
        )
        self.executemany(INSERT_AUDIENCE_SQL, [(each, seq) for each in event.audience])

    def hold_event_order(self) -> None:
        """Keep every other writer from adding events until this transaction ends (for a
        change that needs the log's end to stay where it is). Nothing where writers take
        turns anyway."""
        return None

    @abstractmethod
    def last_event_seq(self) -> int:
        """The highest ``seq`` given out so far (0 for an empty log): the log's end."""

    @abstractmethod
    def search_ids(
        self, *, words: list[str], filters: dict[str, str], limit: int, offset: int
    ) -> tuple[int, list[int]]:
        """(exact total, the page of order ids) of orders containing every word as a
        prefix and matching the filters; best match first, newest first on ties."""


class Store(ABC):
    """The foundation's store: orders, placements, the logs, the ledger and dead letters."""

    #: ``sqlite`` or ``postgres``.
    engine: str
    #: What the store's transactions share as :attr:`Tx.memo` (caches, the secrets key).
    memo: dict[str, Any]
    #: Write transactions one process runs side by side: 1 where the engine has one
    #: writer at a time (SQLite); more where writers only wait for the rows they share.
    write_concurrency = 1

    @abstractmethod
    def write(self) -> AbstractContextManager[Tx]:
        """One write transaction: committed on success, rolled back on any exception.

        A store that cannot start or commit it (busy, connection lost, serialization
        failure) raises :class:`shared.errors.Unavailable`, which retries the command.
        """

    def after_commit(self) -> None:
        """Upkeep after a batch of writes committed, outside the write lock; never raises.
        Nothing by default (SQLite: a WAL checkpoint when one is due)."""
        return None

    #: How often a worker looks for writers stuck mid-transaction (:meth:`end_stuck_writers`),
    #: in ms; 0 where the engine has none to look for.
    stuck_writer_check_ms = 0

    def end_stuck_writers(self) -> list[int]:
        """End the sessions of other writers stuck in the middle of a transaction, waiting
        for their client (a worker frozen or cut off while it was sending); returns their
        ids. Nothing by default (SQLite has no sessions to end: its writers are one host's
        processes, taking turns at the file's lock)."""
        return []

    @abstractmethod
    def read(self) -> AbstractContextManager[Tx]:
        """One read transaction: a consistent snapshot across several queries."""

    @abstractmethod
    def connection(self) -> Tx:
        """A connection for single statements outside an explicit transaction."""

    @abstractmethod
    def migrate(self) -> int:
        """Run the migrations this store has not had; returns the version it was at."""

    @abstractmethod
    def schema_version(self) -> int:
        """The schema version the store is at."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for people: a path, or a URL without its password."""

    @abstractmethod
    def tables(self) -> list[str]:
        """The store's data tables (search indexes excluded), for copies and checks."""

    @abstractmethod
    def restart_ids(self) -> None:
        """After :meth:`Tx.bulk_insert` with explicit ids: new rows get ids after them."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection."""
