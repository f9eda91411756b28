"""A writer that stops answering in the middle of a write transaction (a worker SIGSTOPped,
a host cut off, a VM paused) does not hold its locks for ever: PostgreSQL ends its session
after the idle-in-transaction timeout, the writers waiting for those locks go on, and the
frozen writer's transaction is rolled back (its commands are retried, and the ledger
applies them once). Found by the nemesis run (tests/faults): a zombie worker stalled every
write for as long as it was stopped.

A writer frozen between two pieces of what it was sending is not idle in transaction but
active, waiting for its client, which that timeout does not cover: the workers end such
sessions of jobordre's themselves (``PostgresStore.end_stuck_writers``). Found by the nemesis
run again (seed 120726): a zombie caught holding the numbering lock stalled every write for
63 s."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from shared.errors import Unavailable
from shared.store.postgres import APPLICATION_NAME, WRITE_LOCK, PostgresStore
from tests.postgres_cluster import PostgresCluster

pytestmark = pytest.mark.postgres

#: The frozen writer's idle-in-transaction timeout in this test, in milliseconds.
IDLE_MS = 500


def test_a_frozen_writer_loses_its_transaction_and_the_others_write_meanwhile(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.fresh_database()
    frozen = PostgresStore(url, pool_size=1, idle_in_transaction_timeout_ms=IDLE_MS)
    other = PostgresStore(url, pool_size=1)
    wrote_after: list[float] = []

    def write_meanwhile() -> None:
        started = time.monotonic()
        with other.write() as tx:  # waits for the frozen writer's row lock
            tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('both', 'other')")
        wrote_after.append(time.monotonic() - started)

    def freeze_mid_write() -> None:
        with frozen.write() as tx:
            tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('both', 'frozen')")
            tx.execute("SELECT 1").fetchone()
            writer = threading.Thread(target=write_meanwhile)
            writer.start()
            writer.join(10 * IDLE_MS / 1000)  # the frozen writer sends nothing meanwhile
            assert wrote_after, "the other writer waited for the frozen one's lock"

    try:
        with pytest.raises(Unavailable):
            freeze_mid_write()
        assert wrote_after[0] < 5 * IDLE_MS / 1000
        with other.read() as tx:
            rows = tx.execute("SELECT value FROM foundation_secrets WHERE name = 'both'")
            assert [row[0] for row in rows.fetchall()] == ["other"]
        # The pool replaces the ended session: the frozen writer writes again.
        with frozen.write() as tx:
            tx.execute("INSERT INTO foundation_secrets (name, value) VALUES ('again', 'x')")
    finally:
        frozen.close()
        other.close()


#: The stuck writer's threshold in the tests below, in milliseconds.
STUCK_MS = 400


def _stuck_holding_the_numbering_lock(url: str, *, application_name: str) -> psycopg.Connection:
    """A session that took the numbering lock and then waits for the rest of its statements,
    as a writer frozen between two pieces of what it was sending: the statements went with
    a flush, not a Sync, so the server counts it active, waiting for its client."""
    conn = psycopg.connect(url, autocommit=True, application_name=application_name)
    # libpq's pipeline directly: psycopg's would send a Sync when left.
    pgconn = conn.pgconn
    pgconn.enter_pipeline_mode()
    pgconn.send_query_params(b"BEGIN", None)
    pgconn.send_query_params(b"SELECT pg_advisory_xact_lock($1::bigint)", [b"%d" % WRITE_LOCK])
    pgconn.send_flush_request()
    while pgconn.flush():
        time.sleep(0.01)
    deadline = time.monotonic() + 5
    while _state(url, pgconn.backend_pid) != ("active", "ClientRead"):
        assert time.monotonic() < deadline, "the stuck session never waited for its client"
        time.sleep(0.02)
    return conn


def _state(url: str, pid: int) -> tuple[str, str] | None:
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT state, wait_event FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def test_a_writer_stuck_mid_message_holding_the_numbering_lock_is_ended(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.fresh_database()
    store = PostgresStore(url, pool_size=2, idle_in_transaction_timeout_ms=STUCK_MS)
    stuck = _stuck_holding_the_numbering_lock(url, application_name=APPLICATION_NAME)
    numbered = threading.Event()

    def number_events() -> None:
        with store.write() as tx:
            tx.hold_event_order()
        numbered.set()

    writer = threading.Thread(target=number_events, daemon=True)
    try:
        writer.start()
        # The idle-in-transaction timeout does not end it: the writer keeps waiting.
        assert not numbered.wait(4 * STUCK_MS / 1000), "the stuck session let go by itself"
        assert store.end_stuck_writers() == [stuck.info.backend_pid]
        assert numbered.wait(5), "the writer still waits once the stuck session is ended"
        assert _state(url, stuck.info.backend_pid) is None
    finally:
        store.close()
        stuck.close()


@pytest.mark.parametrize(
    ("application_name", "wait_s"),
    [
        pytest.param(APPLICATION_NAME, 0.0, id="stuck-for-less-than-the-timeout"),
        pytest.param("psql", 2 * STUCK_MS / 1000, id="not-a-jobordre-session"),
    ],
)
def test_only_jobordre_s_sessions_stuck_past_the_timeout_are_ended(
    postgres_cluster: PostgresCluster, application_name: str, wait_s: float
) -> None:
    url = postgres_cluster.fresh_database()
    store = PostgresStore(url, pool_size=1, idle_in_transaction_timeout_ms=STUCK_MS)
    stuck = _stuck_holding_the_numbering_lock(url, application_name=application_name)
    try:
        time.sleep(wait_s)
        assert store.end_stuck_writers() == []
        assert _state(url, stuck.info.backend_pid) == ("active", "ClientRead")
    finally:
        store.close()
        stuck.close()


def test_a_copy_waiting_for_its_rows_is_left_alone(postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.fresh_database()
    store = PostgresStore(url, pool_size=1, idle_in_transaction_timeout_ms=STUCK_MS)
    copying = psycopg.connect(url, application_name=APPLICATION_NAME)
    try:
        with (
            copying.cursor() as cursor,
            cursor.copy("COPY reads (principal, command_id, at) FROM STDIN") as copy,
        ):
            time.sleep(2 * STUCK_MS / 1000)
            assert store.end_stuck_writers() == []
            assert _state(url, copying.info.backend_pid) == ("active", "ClientRead")
            copy.write_row(["nobody", "c1", "2026-12-07T00:00:00+00:00"])
        copying.rollback()
    finally:
        store.close()
        copying.close()
