"""Fast recovery: the messages a SIGKILLed worker held come back and are applied once.

A test holds SQLite's write lock so that write jobs block inside the worker: the worker
then holds messages it has fetched and not acked (two running, two prefetched), exactly
the state a crash leaves behind.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from shared.commands import CommandKind
from shared.settings import Settings
from shared.store import SqliteStore as Store
from tests.conftest import System, wait_until
from tests.factories import order_doc
from workers.client import Client

pytestmark = pytest.mark.integration

JOBCENTRE = "jobcentre:101"
#: The recovery bound the issue sets, in seconds.
RECOVERY_BOUND_S = 90


def settings_of(system: System, **extra: Any) -> Settings:
    return Settings(home=system.home, db=system.db, redis_url=system.redis.url, **extra)


@contextmanager
def write_lock(system: System) -> Iterator[None]:
    """Hold the store's write lock: every write job blocks on BEGIN IMMEDIATE meanwhile."""
    Store(system.db).close()  # the schema exists before the lock is taken
    conn = sqlite3.connect(system.db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@contextmanager
def client_of(system: System) -> Iterator[Client]:
    """A client of the jobcentre; made before the lock is taken (it may write its key)."""
    client = Client(settings_of(system), JOBCENTRE)
    try:
        yield client
    finally:
        client.close()


def send_orders(client: Client, prefix: str, n: int, *, first: int = 0) -> list[str]:
    """Send orders ``prefix first`` ... ``prefix first+n-1``; their command ids."""
    return [
        client.send(
            CommandKind.REGISTER_ORDER,
            {"order": order_doc(title=f"{prefix} {i}")},
            command_id=f"{prefix}-{i:04d}",
        )
        for i in range(first, first + n)
    ]


def one_running_rest_queued(
    system: System, client: Client, pid: int, prefix: str, n: int
) -> list[str]:
    """With the write lock held: send one order and wait until worker ``pid`` runs it
    (blocked on the lock), then ``n - 1`` more, which wait on the queue: a worker takes
    the commands queue in batches, and takes nothing more while its batch runs."""
    ids = send_orders(client, prefix, 1)
    wait_until(
        lambda: (row := worker_row(system, pid)) and (row["running"], row["in_flight"]) == (1, 1),
        30,
        "the worker to run the first command",
    )
    ids += send_orders(client, prefix, n - 1, first=1)
    wait_until(lambda: queue(system, "jobordre.commands")["ready"] == n - 1, 30, "the rest queued")
    return ids


def scheduled_jobs_done(system: System) -> None:
    """Wait until the scheduled jobs that a starting worker enqueues are applied.

    Every worker asks for the expiry and anonymisation jobs as it starts; a test that
    counts the messages a worker holds must not race them for the worker's threads.
    """

    def done() -> bool:
        with sqlite3.connect(system.db) as conn:
            kinds = conn.execute(
                "SELECT COUNT(*) FROM commands WHERE principal = 'system'"
                " AND (command_id LIKE 'expire-orders-%' OR command_id LIKE 'anonymise-%')"
            ).fetchone()[0]
        return bool(kinds >= 2 and queue(system, "jobordre.commands")["ready"] == 0)

    wait_until(done, 30, "the worker's scheduled jobs to be applied")


def snapshot(system: System, **env: str) -> dict[str, Any]:
    result = system.cli("queues", "--json", **env)
    assert result.code == 0, result.out + result.err
    document: dict[str, Any] = json.loads(result.out)
    return document


def queue(system: System, name: str) -> dict[str, Any]:
    [found] = [q for q in snapshot(system)["queues"] if q["name"] == name]
    return found


def worker_row(system: System, pid: int, **env: str) -> dict[str, Any] | None:
    rows = [w for w in snapshot(system, **env)["workers"] if w["pid"] == pid]
    return rows[0] if rows else None


def applied(system: System, command_ids: list[str]) -> list[tuple[str, str]]:
    with sqlite3.connect(system.db) as conn:
        marks = ", ".join("?" for _ in command_ids)
        return conn.execute(
            f"SELECT command_id, outcome FROM commands WHERE command_id IN ({marks})"
            " ORDER BY command_id",
            command_ids,
        ).fetchall()


def titles(system: System, prefix: str) -> list[str]:
    with sqlite3.connect(system.db) as conn:
        rows = conn.execute(
            "SELECT title FROM orders WHERE title LIKE ? ORDER BY title", (f"{prefix} %",)
        ).fetchall()
    return [row[0] for row in rows]


def test_a_killed_workers_messages_are_back_and_done_within_90_s(bare_system: System) -> None:
    system = bare_system
    doomed = system.start_worker(threads=2, JOBORDRE_SQLITE_BUSY_TIMEOUT_MS="120000")
    scheduled_jobs_done(system)
    with client_of(system) as client, write_lock(system):
        # One runs (blocked on the lock) and is held by the worker; three wait on the queue.
        ids = one_running_rest_queued(system, client, doomed.pid, "Genoprettet", 4)
        held = worker_row(system, doomed.pid)
        assert held is not None and (held["in_flight"], held["alive"]) == (1, True)
        doomed.kill()
        doomed.wait()
        killed_at = time.monotonic()
    assert applied(system, ids) == []  # the lock kept every job from committing

    rescuer = system.start_worker(threads=2)
    wait_until(lambda: worker_row(system, rescuer.pid), 30, "the second worker to register")
    wait_until(lambda: len(applied(system, ids)) == 4, RECOVERY_BOUND_S, "the four orders")
    recovered_s = time.monotonic() - killed_at
    print(f"recovered {len(ids)} messages {recovered_s:.1f} s after SIGKILL")
    assert recovered_s < RECOVERY_BOUND_S
    assert applied(system, ids) == [(i, "ok") for i in ids]
    assert titles(system, "Genoprettet") == [f"Genoprettet {i}" for i in range(4)]  # once each
    commands = queue(system, "jobordre.commands")
    assert (commands["ready"], commands["in_flight"]) == (0, 0)
    dead = worker_row(system, doomed.pid)
    assert dead is not None and dead["alive"] is False


def test_busy_workers_keep_their_messages_past_the_heartbeat_timeout(
    bare_system: System,
) -> None:
    system = bare_system
    quick = {"JOBORDRE_HEARTBEAT_TIMEOUT_MS": "1000", "JOBORDRE_MAINTENANCE_INTERVAL_MS": "200"}
    slow_store = {"JOBORDRE_SQLITE_BUSY_TIMEOUT_MS": "60000"}
    workers = [system.start_worker(threads=1, **quick, **slow_store) for _ in range(2)]
    pids = {w.pid for w in workers}
    wait_until(lambda: {w["pid"] for w in snapshot(system)["workers"]} == pids, 30, "both workers")
    scheduled_jobs_done(system)
    with client_of(system) as client, write_lock(system):

        def holding(total: int) -> dict[int, int] | None:
            rows = snapshot(system, **quick)["workers"]
            held = {w["pid"]: w["in_flight"] for w in rows}
            return held if sum(held.values()) == total else None

        # One command each, in a batch blocked on the lock (a blocked worker takes nothing
        # more, so the second goes to the other worker); two more wait on the queue.
        ids = send_orders(client, "Optaget", 1)
        wait_until(lambda: holding(1), 30, "a worker to hold the first")
        ids += send_orders(client, "Optaget", 1, first=1)
        before = wait_until(lambda: holding(2), 30, "the other worker to hold the second")
        assert sorted(before.values()) == [1, 1]
        ids += send_orders(client, "Optaget", 2, first=2)
        wait_until(lambda: queue(system, "jobordre.commands")["ready"] == 2, 30, "two queued")
        # Three heartbeat timeouts with both workers blocked: they still beat, so neither's
        # maintenance takes the other's messages back.
        time.sleep(3)
        after = snapshot(system, **quick)
        assert {w["pid"]: w["in_flight"] for w in after["workers"]} == before
        assert all(w["alive"] for w in after["workers"])
        assert queue(system, "jobordre.commands")["ready"] == 2
    wait_until(lambda: len(applied(system, ids)) == 4, 30, "all four orders")
    assert titles(system, "Optaget") == [f"Optaget {i}" for i in range(4)]
