"""Stopping a worker: SIGTERM finishes the running batch of commands, and what it did not
take stays on the queue; a second SIGTERM stops at once. Real worker processes, real redis-server.
"""

from __future__ import annotations

import signal
import sqlite3

import pytest

from tests.conftest import System, wait_until
from tests.workers.ops.test_recovery import (
    applied,
    client_of,
    one_running_rest_queued,
    scheduled_jobs_done,
    send_orders,
    snapshot,
    titles,
    write_lock,
)

pytestmark = pytest.mark.integration

BLOCKING = {"JOBORDRE_SQLITE_BUSY_TIMEOUT_MS": "60000", "JOBORDRE_WORKER_SHUTDOWN_MS": "30000"}


def holding(system: System, pid: int, running: int, in_flight: int) -> bool:
    rows = [w for w in snapshot(system)["workers"] if w["pid"] == pid]
    return bool(rows) and (rows[0]["running"], rows[0]["in_flight"]) == (running, in_flight)


def test_sigterm_lets_the_running_batch_finish_and_leaves_the_rest_queued(
    bare_system: System,
) -> None:
    system = bare_system
    worker = system.start_worker(threads=1, **BLOCKING)
    scheduled_jobs_done(system)
    with client_of(system) as client, write_lock(system):
        ids = one_running_rest_queued(system, client, worker.pid, "Stop", 2)
        worker.send_signal(signal.SIGTERM)
        # Still stopping: its batch waits on the lock, and it still beats meanwhile.
        wait_until(
            lambda: b"Shutting down" in system.worker_logs(), 10, "the worker to start stopping"
        )
        assert worker.poll() is None
        assert [w["alive"] for w in snapshot(system)["workers"]] == [True]
    assert worker.wait(30) == 0
    assert len(applied(system, ids)) == 1  # the running batch finished
    document = snapshot(system)
    [commands] = [q for q in document["queues"] if q["name"] == "jobordre.commands"]
    assert (commands["ready"], commands["in_flight"]) == (1, 0)  # the other still queued
    assert document["workers"] == []  # it unregistered
    system.start_worker(threads=1)
    wait_until(lambda: len(applied(system, ids)) == 2, 30, "the requeued command")
    assert titles(system, "Stop") == ["Stop 0", "Stop 1"]


def test_a_second_sigterm_stops_at_once(bare_system: System) -> None:
    system = bare_system
    worker = system.start_worker(threads=1, **BLOCKING)
    scheduled_jobs_done(system)
    with client_of(system) as client, write_lock(system):
        ids = send_orders(client, "Hast", 1)
        wait_until(lambda: holding(system, worker.pid, 1, 1), 30, "the command running")
        worker.send_signal(signal.SIGTERM)
        wait_until(lambda: b"Shutting down" in system.worker_logs(), 10, "the first signal")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 1  # while its job is still blocked on the lock
    with sqlite3.connect(system.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    assert applied(system, ids) == []
