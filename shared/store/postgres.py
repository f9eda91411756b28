"""The PostgreSQL engine: one database shared by workers on several hosts (psycopg 3).

What SQLite gets from having one writer at a time, made to hold here with writers side by
side on every host:

* **An order's writers take turns.** A write transaction reads an order with ``SELECT
  ... FOR NO KEY UPDATE`` (:attr:`PostgresWriteTx.lock_suffix`): a concurrent command on
  the same order waits until this one commits and then reads what it wrote, so its version
  check, its placements (one per person per order) and its referral count are current.
  The ``UPDATE`` checks the version too (:func:`shared.store.save_order`). Commands on
  different orders never wait for each other. Order ids come from the column's sequence.
* **A command id is claimed once.** The ledger row is inserted first with ``ON CONFLICT DO
  NOTHING`` (:func:`shared.store.claim_command`): a concurrent duplicate waits for the
  first's row lock, then reads its reply.
* **Event ``seq`` gap-free in commit order.** Events are kept in the transaction's memory
  (:meth:`PostgresWriteTx.append_event`) and inserted by its last statement before COMMIT,
  after the transaction-level advisory lock :data:`WRITE_LOCK`: ``MAX(seq) + 1`` onwards,
  with the header's ``seq`` and epoch filled in there. The lock is released only after the
  COMMIT is visible, so no lower ``seq`` can commit after a higher one (consumers
  deduplicate and detect gaps by ``seq``). It is held for that one statement and the
  COMMIT, sent together: no network round trip is inside it.
* **Few round trips.** A write transaction runs in psycopg's pipeline mode: statements
  whose results nobody reads yet are sent without waiting, and a command waits for the
  server only where it reads (its order, its ledger claim answered with it). Statements
  between two waits go to the server together, as one message
  (:mod:`shared.store.postgres_pipeline`). A command's savepoint is released without
  waiting for its last statements when the caller says so (:attr:`Tx.settle_each`); they
  are answered with the next wait, and a failure there is :class:`LateFailure`: the
  caller redoes the transaction with each command settled. BEGIN goes with the first
  command; the events, COMMIT and the lock go in one message, their arrays in binary.
* **Infrastructure errors are retryable.** A dropped connection, a server shutting down,
  a serialization failure or deadlock, an exhausted pool: :class:`Unavailable`, which
  Dramatiq retries; the ledger makes the retry apply the command exactly once.

Reads take no lock and run in REPEATABLE READ snapshots.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, cast

import psycopg
import psycopg_pool
from psycopg.rows import RowMaker

from shared.errors import LateFailure, Unavailable
from shared.store import (
    postgres_copy,
    postgres_pipeline,
    postgres_schema,
    postgres_search,
    secrets_at_rest,
)
from shared.store.interface import (
    CURRENT_EPOCH_SQL,
    TABLES,
    NewEvent,
    Params,
    Result,
    Store,
    Tx,
)

#: Advisory lock key that numbers events in commit order (an arbitrary 64-bit constant:
#: "jobordre"); held from a write transaction's last statement until its COMMIT.
WRITE_LOCK = 0x6A6F626F72647265 & 0x7FFF_FFFF_FFFF_FFFF
#: How long a thread waits for a pooled connection before reporting unavailable, in ms.
POOL_TIMEOUT_MS = 10_000
#: Write transactions one process runs side by side by default (the parts of a batch of
#: commands, shared.foundation): each waits for its own round trips to the database.
WRITE_CONCURRENCY = 4
#: Write transactions whose numbering wait a store keeps (:attr:`PostgresStore.numbering`).
NUMBERING_SAMPLES = 10_000
#: How long a new connection may take to open, in seconds (libpq's unit).
CONNECT_TIMEOUT_S = 5
#: How long PostgreSQL waits for a client that went silent inside a transaction before it
#: ends the session, in milliseconds: a worker frozen mid-write (SIGSTOP, a paused VM, a
#: host cut off) would otherwise hold the write lock, and stall every writer, until it
#: wakes (the numbering lock, an order's row locks). Below the heartbeat timeout (20 s), so
#: the messages requeued from such a worker find the locks free. A live writer sends its
#: statements back to back.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000

#: The name every pooled session gives PostgreSQL (``application_name``): how
#: :meth:`PostgresStore.end_stuck_writers` knows jobordre's sessions from others'.
APPLICATION_NAME = "jobordre"

#: jobordre's sessions stuck in the middle of a transaction's statements for longer than
#: ``after_s``: the server executed the statements that came and waits for the rest
#: ("active", ClientRead), which the idle-in-transaction timeout does not cover (it starts
#: only after a Sync). A writer's statements go out in pieces when they do not fit one
#: write to the socket (a batch of long orders), so one frozen between two pieces holds
#: whatever locks the first took, the numbering lock among them, for as long as it is
#: frozen. A COPY streaming rows (``store copy``) waits for its client by design: left.
#: (MATERIALIZED: the sessions are chosen before any is ended, whatever order the
#: planner would test the conditions in.)
_END_STUCK_WRITERS = """
WITH stuck AS MATERIALIZED (
    SELECT pid FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = %(name)s
        AND pid <> pg_backend_pid() AND state = 'active' AND wait_event = 'ClientRead'
        AND xact_start IS NOT NULL AND query NOT ILIKE 'copy%%'
        AND state_change < clock_timestamp() - make_interval(secs => %(after_s)s)
)
SELECT pid FROM stuck WHERE pg_terminate_backend(pid)
"""

#: Takes the numbering lock; its own statement, so the next one's snapshot is taken after
#: the lock was granted and sees every event committed before it.
_TAKE_WRITE_LOCK = f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"

#: Inserts a transaction's events numbered after the log's end, with their audiences, in
#: one statement: ``ord`` is an event's place among the transaction's (1, 2, ...), and a
#: header is ``head || seq || middle || epoch || '}'`` (see :func:`_header_parts`).
_APPEND_EVENTS = f"""
WITH base AS (
    SELECT (SELECT COALESCE(MAX(seq), 0) FROM events) AS last, ({CURRENT_EPOCH_SQL}) AS epoch
), added AS (
    INSERT INTO events (seq, id, type, at, order_id, employer_cvr, header, order_doc,
        log_upto, command_id)
    SELECT base.last + e.ord, e.id, e.type, e.at, e.order_id, e.employer_cvr,
        e.head || (base.last + e.ord)::text || e.middle || to_json(base.epoch)::text || '}}',
        e.order_doc, e.log_upto, e.command_id
    FROM base, unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::bigint[],
        ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[])
        AS e(ord, id, type, at, order_id, employer_cvr, head, middle, order_doc, log_upto,
            command_id)
    RETURNING seq
)
INSERT INTO event_audience (organisation, seq)
SELECT a.organisation, base.last + a.ord FROM base, unnest(?::text[], ?::bigint[])
    AS a(organisation, ord)
"""  # noqa: S608 - constants only


def _header_parts(event: NewEvent) -> tuple[str, str]:
    """The header of ``event`` cut around its ``seq`` and its epoch, the last field:
    ``(head, middle)`` with ``head`` ending in ``"seq":`` and ``middle`` in ``"epoch":``."""
    text = event.header(0, "")
    marker = '"seq":0,'
    cut = text.index(marker) + len(marker) - 2
    tail = '""}'
    if not text.endswith(tail):
        raise RuntimeError("an event header must end with its epoch")
    return text[:cut], text[cut + 1 : -len(tail)]


def _configure_session(conn: psycopg.Connection[Any], *, timeout_ms: int) -> None:
    """Set a new pooled session up: its idle-in-transaction timeout (see the constant),
    and lz4 for the values it writes too long for a row (an order's document, most
    often), where the server has it, as ``store copy`` does: PostgreSQL's own pglz costs
    the server more CPU a write (measured: docs/scaling-out-postgres.md)."""
    conn.execute(f"SET idle_in_transaction_session_timeout = {int(timeout_ms)}".encode())
    postgres_copy.use_fast_toast_compression(conn, local=False)


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


@functools.lru_cache(maxsize=1024)
def _column_index(names: tuple[bytes, ...]) -> dict[str, int]:
    return {name.decode(): place for place, name in enumerate(names)}


def pg_row(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    """psycopg row factory making :class:`PgRow` rows.

    The column names come from the result itself, not ``cursor.description``, which
    builds a ``Column`` object per column for every statement that returns rows."""
    result = cursor.pgresult
    names = () if result is None else tuple(result.fname(n) or b"" for n in range(result.nfields))
    index = _column_index(names)
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


#: :data:`_APPEND_EVENTS` with its arrays sent in binary: psycopg quotes and escapes every
#: element of a text array in Python, which made the order documents of a batch's events
#: cost more CPU than the rest of its commands' statements together.
_APPEND_EVENTS_BINARY = to_pyformat(_APPEND_EVENTS).replace("%s", "%b")


def unavailable(error: psycopg.Error) -> Unavailable:
    """The retryable error for a PostgreSQL failure that is not the command's fault."""
    what = type(error).__name__
    return Unavailable(f"the PostgreSQL store is unavailable ({what}); the command will be retried")


#: psycopg errors that say nothing about the command: the server, the network, the pool,
#: or a concurrent transaction (SQLSTATE class 40, 08, 57), or a session the server ended
#: because its client went silent mid-transaction (25P03) - retry.
RETRYABLE: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
    psycopg.errors.IdleInTransactionSessionTimeout,
)


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

    def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement of the shared dialect."""
        return self._execute_pyformat(to_pyformat(sql), params)

    def _execute_pyformat(self, query: str, params: Params) -> Result:
        """Run one statement already in psycopg's placeholders (``%s``, ``%b``)."""
        try:
            return cast(Result, self.conn.execute(query, params))
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
        """The table's columns but those the database computes (generated ones, and
        :data:`postgres_search.COMPUTED_COLUMNS`: ``orders.search``), in order."""
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = ? AND is_generated = 'NEVER'"
            " ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        computed = postgres_search.COMPUTED_COLUMNS.get(table, ())
        return [str(row[0]) for row in rows if str(row[0]) not in computed]

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
        """``MAX(seq) + 1``: the ``seq`` an event appended now would get if this transaction
        committed before any other (events are numbered at COMMIT)."""
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


class _Sent:
    """The cursor of a statement sent in pipeline mode: reading it waits for its result."""

    __slots__ = ("_cursor", "_index", "_tx")

    def __init__(self, tx: PostgresWriteTx, cursor: psycopg.Cursor[Any], index: int) -> None:
        self._tx = tx
        self._cursor = cursor
        self._index = index

    @property
    def answered(self) -> bool:
        """Whether the statement's result is in (no wait to read it)."""
        return self._cursor.pgresult is not None

    def _wait(self) -> psycopg.Cursor[Any]:
        """The cursor once its result is in (and with it every earlier statement's)."""
        if self._cursor.pgresult is None:
            self._tx.sync()
        self._tx.done_upto(self._index)
        return self._cursor

    @property
    def rowcount(self) -> int:
        return self._wait().rowcount

    def fetchone(self) -> Any:
        return self._fetch(lambda cursor: cursor.fetchone())

    def fetchall(self) -> list[Any]:
        return cast(list[Any], self._fetch(lambda cursor: cursor.fetchall()))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def _fetch(self, how: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        # A wait ends with a Sync, not only a flush: between two waits the session is then
        # "idle in transaction", so a writer frozen there (a stopped host, a cut link) loses
        # its transaction and its row locks after IDLE_IN_TRANSACTION_TIMEOUT_MS.
        # Without a Sync the server counts it "active" and keeps the locks for as long.
        if self._cursor.pgresult is None:
            self._tx.sync()
        try:
            found = how(self._cursor)
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error
        self._tx.done_upto(self._index)
        return found


class PostgresWriteTx(PostgresTx):
    """A write transaction in pipeline mode, its events kept until COMMIT (see the module
    docstring)."""

    lock_suffix = " FOR NO KEY UPDATE"
    next_order_id_sql = "SELECT jobordre_next_order_id()"
    #: From the identity columns' sequences, as their defaults would: a writer beside this
    #: one never gets the same.
    next_placement_ids_sql = (
        "SELECT nextval(pg_get_serial_sequence('placements', 'id')),"
        " nextval(pg_get_serial_sequence('placement_log', 'id'))"
    )

    def __init__(self, conn: psycopg.Connection[PgRow], memo: dict[str, Any]) -> None:
        super().__init__(conn, memo)
        #: Events appended, numbered at COMMIT.
        self.events: list[NewEvent] = []
        self._checks: list[tuple[Result, Callable[[], Exception]]] = []
        self._pipeline = ExitStack()
        self._piped: psycopg.Pipeline | None = None
        #: Statements sent that may fail, and how many of them are known to have succeeded.
        self._sent = 0
        self._done = 0
        #: Checks of savepoints released before their statements' results came
        #: (:attr:`settle_each` False), made at the next wait.
        self._late_checks: list[tuple[Result, Callable[[], Exception]]] = []
        #: Statements of released savepoints up to this index are not yet known to have
        #: succeeded: an error at the next wait cannot be pinned on one savepoint.
        self._late_upto = 0
        #: Set once a late failure was found: the transaction can only be rolled back.
        self._failed: LateFailure | None = None

    def _enter_pipeline(self) -> None:
        if self._piped is None:
            self._piped = self._pipeline.enter_context(self.conn.pipeline())
            # Statements nobody waits for yet go with the next wait (postgres_pipeline).
            self.conn.cursor_factory = postgres_pipeline.cursor_class()

    def leave_pipeline(self) -> None:
        """Wait for every statement sent and leave pipeline mode (for COPY, and at the end)."""
        if self._piped is not None:
            self._piped = None
            self.conn.cursor_factory = psycopg.Cursor
            try:
                self._pipeline.close()
            except RETRYABLE as error:
                raise unavailable(cast(psycopg.Error, error)) from error

    def _execute_pyformat(self, query: str, params: Params) -> Result:
        """Send one statement; its result is waited for when it is read."""
        self._refuse_if_failed()
        self._enter_pipeline()
        cursor = cast(psycopg.Cursor[Any], super()._execute_pyformat(query, params))
        self._sent += 1
        return _Sent(self, cursor, self._sent)

    def send(self, sql: str | bytes) -> None:
        """Send a statement that cannot fail in a sound transaction (SAVEPOINT, RELEASE)."""
        self._refuse_if_failed()
        self._enter_pipeline()
        try:
            postgres_pipeline.queue_command(
                self.conn, sql if isinstance(sql, bytes) else sql.encode()
            )
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement per row, sent one after the other without waiting."""
        for row in rows:
            self.execute(sql, row)

    def bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """COPY, out of pipeline mode (which has none)."""
        self.leave_pipeline()
        return super().bulk_insert(table, columns, rows)

    def done_upto(self, index: int) -> None:
        """Statements up to the ``index``-th sent have their results."""
        self._done = max(self._done, index)

    def sync(self) -> None:
        """Wait for every statement sent; raise the first one's error, if any failed, or
        :class:`LateFailure` if a released savepoint's statement or check failed."""
        self._refuse_if_failed()
        late = self._done < self._late_upto
        if self._piped is not None:
            try:
                self._piped.sync()
            except psycopg.Error as error:
                if late:
                    # Whatever failed (a deadlock too), the statements after it were
                    # skipped, a released savepoint's RELEASE among them: rolling back to
                    # the current savepoint's name would undo an earlier command.
                    raise self._fail(f"a statement failed ({type(error).__name__})") from error
                if isinstance(error, RETRYABLE):
                    raise unavailable(error) from error
                raise
        self.done_upto(self._sent)
        checks, self._late_checks = self._late_checks, []
        for cursor, refusal in checks:
            if cursor.rowcount != 1:
                raise self._fail(f"a check failed ({type(refusal()).__name__})")

    def _fail(self, what: str) -> LateFailure:
        self._failed = LateFailure(
            f"{what} after its command's savepoint was released: the write transaction is "
            "rolled back, to be done again with each command settled"
        )
        return self._failed

    def _refuse_if_failed(self) -> None:
        if self._failed is not None:
            raise self._failed

    def settle(self) -> None:
        """Wait for what was sent since the last wait and run the checks of
        :meth:`expect_one`: a command's errors show inside its own savepoint."""
        if self._done < self._sent:
            self.sync()
        checks, self._checks = self._checks, []
        for cursor, error in checks:
            if cursor.rowcount != 1:
                raise error()

    def recover(self) -> None:
        """After an error: wait for what is still on its way, its errors dropped (the
        caller rolls back), so the connection takes statements again."""
        if self._piped is not None and self._failed is None:
            with contextlib.suppress(psycopg.Error, Unavailable):
                self.sync()
        self._done = self._sent
        self._checks.clear()

    def expect_one(self, cursor: Result, error: Callable[[], Exception]) -> None:
        """Checked when the command settles (:meth:`settle`), not at once: no round trip."""
        self._checks.append((cursor, error))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """As :meth:`Tx.savepoint`: a command's failure rolls back that command alone, and
        so do the events it appended.

        With :attr:`settle_each` its statements settle before it is released. Without, it
        is released at once: the checks whose results came with its reads are made now,
        the rest at the next wait, and a failure found there is :class:`LateFailure`."""
        self._savepoints += 1
        name = f"jobordre_{self._savepoints}"
        events = len(self.events)
        self.send(f"SAVEPOINT {name}")
        try:
            yield
            if self.settle_each:
                self.settle()
            else:
                self._release_lately()
        except BaseException:
            self.recover()
            if self._failed is not None:
                raise
            del self.events[events:]
            self.send(f"ROLLBACK TO SAVEPOINT {name}")
            self.send(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            self.send(f"RELEASE SAVEPOINT {name}")
        finally:
            self._savepoints -= 1

    def _release_lately(self) -> None:
        """End a savepoint without waiting: checks whose results are in now, the others
        and the statements not yet answered at the next wait."""
        checks, self._checks = self._checks, []
        for cursor, error in checks:
            if isinstance(cursor, _Sent) and not cursor.answered:
                self._late_checks.append((cursor, error))
            elif cursor.rowcount != 1:
                raise error()
        if self._done < self._sent:
            self._late_upto = self._sent

    def append_event(self, event: NewEvent) -> None:
        """Keep ``event`` for :meth:`commit`, which numbers it."""
        self.events.append(event)

    def hold_event_order(self) -> None:
        """Take the numbering lock now, until COMMIT: for a change that must see the log's
        end stay where it is (a new epoch)."""
        self.execute(_TAKE_WRITE_LOCK).fetchone()

    def commit(self) -> float:
        """Number and insert the events, then COMMIT: one message, one wait. Returns how
        long that wait took with events to number, in seconds (0.0 without): an upper
        bound of how long the numbering lock was held, less one round trip."""
        if self._late_checks:
            # A failed check must stop the COMMIT; a failed statement would stop it anyway
            # (the server skips what follows an error until the next Sync).
            self.sync()
        sent = time.perf_counter()
        if self.events:
            self.execute(_TAKE_WRITE_LOCK)
            self._execute_pyformat(_APPEND_EVENTS_BINARY, _events_params(self.events))
        self.execute("COMMIT")
        self.settle()
        waited = time.perf_counter() - sent if self.events else 0.0
        self.leave_pipeline()
        return waited


def _events_params(events: list[NewEvent]) -> list[Any]:
    """The arrays :data:`_APPEND_EVENTS` unnests."""
    parts = [_header_parts(event) for event in events]
    ords = list(range(1, len(events) + 1))
    audience = [
        (who, place) for place, event in zip(ords, events, strict=True) for who in event.audience
    ]
    return [
        ords,
        [event.id for event in events],
        [event.type for event in events],
        [event.at for event in events],
        [event.order_id for event in events],
        [event.employer_cvr for event in events],
        [head for head, _ in parts],
        [middle for _, middle in parts],
        [event.order_doc for event in events],
        [event.log_upto for event in events],
        [event.command_id for event in events],
        [who for who, _ in audience],
        [place for _, place in audience],
    ]


class _AutoTx(PostgresTx):
    """Single statements outside a transaction: each borrows a pooled connection."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self.memo = store.memo

    def execute(self, sql: str, params: Params = ()) -> Result:
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
        write_concurrency: int = WRITE_CONCURRENCY,
        idle_in_transaction_timeout_ms: int = IDLE_IN_TRANSACTION_TIMEOUT_MS,
    ) -> None:
        """``secrets_key_file``: the key file the signing secrets are wrapped under
        (:mod:`shared.store.secrets_at_rest`), the same on every host; None keeps them
        unwrapped. ``idle_in_transaction_timeout_ms``: see the constant."""
        self.url = url
        #: A session stuck mid-transaction for longer than this is ended (ms; see
        #: :meth:`end_stuck_writers`): the idle-in-transaction timeout, for the case it
        #: does not cover.
        self.stuck_writer_ms = idle_in_transaction_timeout_ms
        #: Workers look twice per timeout: a stuck writer is ended within 1.5 timeouts.
        self.stuck_writer_check_ms = max(1, idle_in_transaction_timeout_ms // 2)
        #: A worker process's batch of commands goes to this many transactions at once.
        self.write_concurrency = max(1, min(write_concurrency, pool_size))
        #: The last write transactions with events: (seconds from sending the numbering
        #: statement to COMMIT's answer, events numbered), for the benchmark.
        self.numbering: deque[tuple[float, int]] = deque(maxlen=NUMBERING_SAMPLES)
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
                    "application_name": APPLICATION_NAME,
                },
                configure=functools.partial(
                    _configure_session, timeout_ms=idle_in_transaction_timeout_ms
                ),
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

    def end_stuck_writers(self) -> list[int]:
        """End every jobordre session stuck mid-transaction, waiting for its client, for
        longer than :attr:`stuck_writer_ms` (:data:`_END_STUCK_WRITERS`); returns their
        process ids. Its transaction rolls back and its locks go; the frozen worker, if it
        wakes, finds its connection gone and retries its commands, which the ledger applies
        once. Any role may end its own sessions."""
        try:
            with self.pool.connection() as conn:
                rows = conn.execute(
                    _END_STUCK_WRITERS,
                    {"name": APPLICATION_NAME, "after_s": self.stuck_writer_ms / 1000},
                ).fetchall()
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error
        return [int(row[0]) for row in rows]

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[PostgresTx]:
        """A read transaction begun by ``begin`` (one round trip, however many statements).

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
                    # its locks. A broken connection is discarded by the pool.
                    if not committed and not conn.closed:
                        with contextlib.suppress(psycopg.Error):
                            conn.execute(b"ROLLBACK")
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error

    @contextmanager
    def write(self) -> Iterator[PostgresTx]:
        """One write transaction, side by side with other hosts' (see the module docstring)."""
        try:
            with self.pool.connection() as conn:
                tx = PostgresWriteTx(conn, self.memo)
                committed = False
                try:
                    tx.send(b"BEGIN")
                    yield tx
                    waited = tx.commit()
                    committed = True
                    if waited:
                        self.numbering.append((waited, len(tx.events)))
                finally:
                    # As in _transaction: the transaction ends with the scope, whatever
                    # ended it; a statement still on its way is waited for first.
                    if not committed and not conn.closed:
                        with contextlib.suppress(psycopg.Error, Unavailable):
                            tx.recover()
                            tx.leave_pipeline()
                        with contextlib.suppress(psycopg.Error):
                            conn.execute(b"ROLLBACK")
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error

    @contextmanager
    def read(self) -> Iterator[PostgresTx]:
        """One read transaction on one snapshot."""
        with self._transaction("BEGIN ISOLATION LEVEL REPEATABLE READ") as tx:
            yield tx

    def check_writable(self, timeout_ms: int) -> None:
        """Take the write lock and release it unused; :class:`Unavailable` if a writer holds
        it longer than ``timeout_ms`` or the database is read-only (a standby)."""
        with self._transaction(
            f"BEGIN; SET LOCAL lock_timeout = {int(timeout_ms)}; {_TAKE_WRITE_LOCK}"
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
        try:
            with self.pool.connection() as conn, conn.transaction():
                postgres_copy.restart_ids(conn)
        except RETRYABLE as error:
            raise unavailable(cast(psycopg.Error, error)) from error

    def close(self) -> None:
        """Close the pool."""
        self.pool.close()
