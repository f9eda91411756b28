"""A writer that stops answering in the middle of a write transaction (a worker SIGSTOPped,
a host cut off, a VM paused) does not hold its locks for ever: PostgreSQL ends its session
after the idle-in-transaction timeout, the writers waiting for those locks go on, and the
frozen writer's transaction is rolled back (its commands are retried, and the ledger
applies them once). Found by the nemesis run (tests/faults): a zombie worker stalled every
write for as long as it was stopped."""

from __future__ import annotations

import threading
import time

import pytest

from shared.errors import Unavailable
from shared.store.postgres import PostgresStore
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
