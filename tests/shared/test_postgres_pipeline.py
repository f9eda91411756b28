"""A write transaction's statements that nobody waits for travel with the next wait, in one
message, and still fail where they would have (shared/store/postgres_pipeline.py).

Counted from outside: a proxy between the store and PostgreSQL counts the chunks the client
writes. This also pins the psycopg internals that module uses: a psycopg release that
changes them turns ``BUFFERING`` off or breaks these tests, never the writes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from shared.errors import LateFailure, Unavailable, VersionConflict
from shared.store import postgres_pipeline
from shared.store.interface import Tx
from shared.store.postgres import PostgresStore
from tests.postgres_cluster import PostgresCluster

pytestmark = pytest.mark.postgres

#: Statements sent before the transaction first waits for a result.
STATEMENTS = 12


class ChunkCounter:
    """A loopback TCP proxy that counts the chunks clients write to the server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.client_chunks = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink, counted in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(source, sink, counted), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
                if data:
                    if counted:
                        with self._lock:
                            self.client_chunks += 1
                    sink.sendall(data)
            except OSError:
                data = b""
            if not data:
                # shutdown, not close alone: the other pump's recv on the same socket
                # keeps it open, and its peer would wait for an end that never comes.
                for end in (source, sink):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)
                    end.close()
                return

    def close(self) -> None:
        self._listener.close()


@contextmanager
def store_through_counter(cluster: PostgresCluster) -> Iterator[tuple[PostgresStore, ChunkCounter]]:
    url = cluster.fresh_database()
    counter = ChunkCounter(cluster.port)
    store = PostgresStore(url.replace(f":{cluster.port}/", f":{counter.port}/"), pool_size=1)
    try:
        yield store, counter
    finally:
        store.close()
        counter.close()


@pytest.fixture
def store(postgres_cluster: PostgresCluster) -> Iterator[PostgresStore]:
    """A store on a fresh database, one pooled connection."""
    opened = PostgresStore(postgres_cluster.fresh_database(), pool_size=1)
    yield opened
    opened.close()


def test_this_psycopg_has_the_internals_the_buffered_cursor_uses() -> None:
    assert postgres_pipeline.BUFFERING, f"psycopg {psycopg.__version__} changed its internals"
    assert postgres_pipeline.cursor_class() is postgres_pipeline.BufferedCursor


def test_statements_before_a_wait_go_to_the_server_in_one_message(
    postgres_cluster: PostgresCluster,
) -> None:
    with store_through_counter(postgres_cluster) as (store, counter):
        with store.write() as tx:
            tx.execute("SELECT 1").fetchone()  # BEGIN and a first wait, not counted
            before = counter.client_chunks
            for number in range(STATEMENTS):
                tx.execute(
                    "INSERT INTO foundation_secrets (name, value) VALUES (?, ?)",
                    (f"buffered-{number}", str(number)),
                )
            found = tx.execute(
                "SELECT COUNT(*) FROM foundation_secrets WHERE name LIKE 'buffered-%'"
            ).fetchone()
            sent = counter.client_chunks - before
        assert found[0] == STATEMENTS, "every statement ran, in order, before the read"
        # One write for the statements and one for the Sync that ends the wait; psycopg's
        # own cursor writes one chunk a statement.
        assert sent <= 2, f"{STATEMENTS + 1} statements took {sent} writes"
        with store.read() as reading:
            kept = reading.execute(
                "SELECT COUNT(*) FROM foundation_secrets WHERE name LIKE 'buffered-%'"
            ).fetchone()
        assert kept[0] == STATEMENTS


def _insert_again(tx: Tx) -> None:
    tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('twice', '2')")


def _lock_unknown(tx: Tx) -> None:
    tx.send("LOCK TABLE no_such_table")  # queued without a cursor


@pytest.mark.parametrize(
    ("second", "error"),
    [
        pytest.param(_insert_again, psycopg.errors.UniqueViolation, id="a-statement"),
        pytest.param(_lock_unknown, psycopg.errors.UndefinedTable, id="a-queued-command"),
    ],
)
def test_a_buffered_statement_that_fails_fails_its_transaction_at_the_next_wait(
    postgres_cluster: PostgresCluster, second: Callable[[Tx], None], error: type[Exception]
) -> None:
    with store_through_counter(postgres_cluster) as (store, _):

        def write() -> None:
            with store.write() as tx:
                tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('twice', '1')")
                second(tx)
                tx.execute("SELECT 1").fetchone()

        with pytest.raises(error):
            write()
        with store.read() as reading:
            row = reading.execute(
                "SELECT COUNT(*) FROM foundation_secrets WHERE name = 'twice'"
            ).fetchone()
        assert row[0] == 0, "the whole transaction rolled back"
        # The connection went back to the pool sound: the next transaction writes.
        with store.write() as tx:
            tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('after', '1')")
            assert tx.execute("SELECT 1").fetchone()[0] == 1


def test_a_savepoint_rolls_back_its_buffered_statements_alone(
    postgres_cluster: PostgresCluster,
) -> None:
    with store_through_counter(postgres_cluster) as (store, _):

        def clash(tx: Tx) -> None:
            with tx.savepoint():
                tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('gone', '1')")
                tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('kept', '2')")

        with store.write() as tx:
            tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('kept', '1')")
            with pytest.raises(psycopg.errors.UniqueViolation):
                clash(tx)
        with store.read() as reading:
            names = reading.execute("SELECT name FROM foundation_secrets").fetchall()
        assert sorted(row[0] for row in names if row[0] in {"kept", "gone"}) == ["kept"]


def test_a_lost_server_mid_transaction_is_unavailable_not_a_hang(
    postgres_cluster: PostgresCluster,
) -> None:
    with store_through_counter(postgres_cluster) as (store, counter):

        def write_across_the_loss() -> None:
            with store.write() as tx:
                tx.execute("SELECT 1").fetchone()
                with psycopg.connect(postgres_cluster.url(), autocommit=True) as killer:
                    killer.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'jobordre' AND pid <> pg_backend_pid()"
                    )
                tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('lost', '1')")
                tx.execute("SELECT 1").fetchone()

        with pytest.raises(Unavailable):
            write_across_the_loss()
        assert counter.client_chunks > 0


def test_a_savepoint_released_without_waiting_reports_its_failure_at_the_next_wait(
    store: PostgresStore,
) -> None:
    def write() -> None:
        with store.write() as tx:
            tx.settle_each = False
            with tx.savepoint():
                tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('a', '1')")
            with tx.savepoint():
                tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('a', '2')")
            with tx.savepoint():
                tx.execute("SELECT 1").fetchone()

    with pytest.raises(LateFailure, match="savepoint was released"):
        write()
    with store.read() as reading:
        row = reading.execute("SELECT COUNT(*) FROM foundation_secrets WHERE name = 'a'")
        assert row.fetchone()[0] == 0, "nothing of the transaction committed"


def test_a_check_left_for_later_stops_the_commit(store: PostgresStore) -> None:
    def write() -> None:
        with store.write() as tx:
            tx.settle_each = False
            with tx.savepoint():
                tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('b', '1')")
                changed = tx.execute(
                    "UPDATE foundation_secrets SET value = 'x' WHERE name = 'missing'"
                )
                tx.expect_one(changed, lambda: VersionConflict("changed meanwhile"))

    with pytest.raises(LateFailure, match="VersionConflict"):
        write()
    with store.read() as reading:
        row = reading.execute("SELECT COUNT(*) FROM foundation_secrets WHERE name = 'b'")
        assert row.fetchone()[0] == 0, "the COMMIT was never sent"


def test_a_check_answered_before_the_release_fails_its_savepoint_alone(
    store: PostgresStore,
) -> None:
    def refused(tx: Tx) -> None:
        with tx.savepoint():
            changed = tx.execute("UPDATE foundation_secrets SET value = 'x' WHERE name = 'no'")
            tx.execute("SELECT 1").fetchone()  # the UPDATE's answer comes with this
            tx.expect_one(changed, lambda: VersionConflict("changed meanwhile"))

    with store.write() as tx:
        tx.settle_each = False
        tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('c', '1')")
        with pytest.raises(VersionConflict):
            refused(tx)
    with store.read() as reading:
        row = reading.execute("SELECT COUNT(*) FROM foundation_secrets WHERE name = 'c'")
        assert row.fetchone()[0] == 1, "the transaction went on and committed"


def test_commands_queued_without_a_cursor_keep_their_place_and_their_message(
    postgres_cluster: PostgresCluster,
) -> None:
    with store_through_counter(postgres_cluster) as (store, counter):
        with store.write() as tx:
            tx.execute("SELECT 1").fetchone()
            before = counter.client_chunks
            tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('queued-1', '1')")
            tx.send("SAVEPOINT queued")
            tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('queued-2', '2')")
            tx.send(b"ROLLBACK TO SAVEPOINT queued")
            tx.send("RELEASE SAVEPOINT queued")
            found = tx.execute(
                "SELECT name FROM foundation_secrets WHERE name LIKE 'queued-%' ORDER BY name"
            ).fetchall()
            sent = counter.client_chunks - before
        # Run in the order sent: the second row was rolled back to the savepoint between.
        assert [row[0] for row in found] == ["queued-1"]
        assert sent <= 2, f"six statements took {sent} writes"
