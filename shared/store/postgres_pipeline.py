"""One message per wait: a psycopg cursor whose pipelined statements stay in libpq's buffer
until the transaction waits for a result.

psycopg's pipeline mode sends each statement as it is executed: after queueing it,
``Cursor.execute`` polls the socket and flushes libpq's output buffer, so every statement
travels in a packet of its own, and the server, which flushes its answers whenever it has
no more input to read, answers each in a packet of its own too. A write transaction's
statements between two waits (a command's ledger claim, its order update, its ledger
reply, its savepoint) are then a poll, a send and a receive each on both sides, for a
result nobody reads yet. :class:`BufferedCursor` only queues the statement in libpq's
output buffer (libpq flushes it by itself past 64 kB); the next wait
(``Pipeline.sync``) sends everything queued in one write and reads the answers together.

A statement without parameters or rows (BEGIN, SAVEPOINT, RELEASE) needs no cursor at all:
:func:`queue_command` queues it as psycopg queues its own COMMIT in pipeline mode, without
a cursor, a query conversion or a prepared-statement lookup, which were most of the
client's cost of such a statement.

This is the one module that uses psycopg's private internals (``Cursor._execute_gen`` and
what it calls, ``Connection._pipeline``, ``Pipeline.command_queue`` and
``Pipeline.result_queue``), as psycopg 3.2 and 3.3 have them; their shape
is pinned by ``tests/shared/test_postgres_pipeline.py``. Where they are missing,
:data:`BUFFERING` is False and write transactions use psycopg's own cursor, which sends
each statement as it comes: slower, equally correct.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import Any

import psycopg

#: Whether this psycopg has the internals :class:`BufferedCursor` uses.
BUFFERING = all(
    hasattr(psycopg.Cursor, name)
    for name in ("_execute_gen", "_start_query", "_convert_query", "_maybe_prepare_gen")
)


class BufferedCursor(psycopg.Cursor[Any]):
    """A cursor whose statements, in pipeline mode, wait in libpq's buffer for the next
    sync; outside pipeline mode it is psycopg's cursor."""

    def _execute_gen(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Generator[Any, Any, None]:
        pipeline = self._conn._pipeline
        if pipeline is None:
            yield from super()._execute_gen(query, params, prepare=prepare, binary=binary)
            return
        # psycopg's own steps, but for the poll-and-flush after queueing the statement.
        yield from self._start_query(query)
        converted = self._convert_query(query, params)
        yield from self._maybe_prepare_gen(converted, prepare=prepare, binary=binary)
        # Hand the queued libpq calls (a PREPARE, the statement) to libpq now, in order:
        # they only append to its output buffer while the connection is in pipeline mode.
        queue = pipeline.command_queue
        while queue:
            queue.popleft()()
        self._last_query = query
        yield from self._conn._prepared.maintain_gen(self._conn)


def queue_command(conn: psycopg.Connection[Any], command: bytes) -> None:
    """Queue ``command`` (no parameters, no rows) for the next wait of ``conn``'s pipeline;
    its error, if any, is raised by that wait. Outside pipeline mode (or without
    :data:`BUFFERING`) it is executed at once."""
    pipeline = conn._pipeline if BUFFERING else None
    if pipeline is None:
        conn.execute(command)
        return
    pipeline.command_queue.append(partial(conn.pgconn.send_query_params, command, None))
    pipeline.result_queue.append(None)


def cursor_class() -> type[psycopg.Cursor[Any]]:
    """The cursor a write transaction uses in pipeline mode."""
    return BufferedCursor if BUFFERING else psycopg.Cursor
