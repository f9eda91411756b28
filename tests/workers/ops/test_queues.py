"""``jobordre queues``: every number it prints equals the truth it claims.

Real redis-server, real worker processes, the installed ``jobordre`` program. The truth is
what the test itself put on the queues, or what it holds back (SQLite's write lock keeps
write jobs running inside the worker for as long as the test wants).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import dramatiq
import pytest

from shared import store
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.store import SqliteStore as Store
from tests.conftest import System, free_port, wait_until
from tests.factories import order_doc
from tests.workers.ops.test_recovery import (
    applied,
    client_of,
    one_running_rest_queued,
    snapshot,
    write_lock,
)
from workers.ops.watch import sparkline
from workers.transport.broker import build_broker

pytestmark = pytest.mark.integration

JOBCENTRE = "jobcentre:101"


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["name"]: q for q in document["queues"]}


def jobs(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["kind"]: j for j in document["jobs"]}


def test_with_no_worker_the_queues_show_exactly_what_was_sent(bare_system: System) -> None:
    system = bare_system
    Store(system.db).close()
    with Store(system.db).write() as conn:  # four dead letters, one of them retried
        for kind in ("get_order", "get_order", "register_order", "register_order"):
            last = store.record_dead_letter(
                conn,
                at=utc_now(),
                source="crashed",
                code="unavailable",
                reason="r",
                message="{}",
                kind=kind,
            )
        store.mark_dead_letter_retried(conn, last, utc_now(), "alice")
    with client_of(system) as client:
        sent_from = time.time()
        for i in range(50):
            client.send(CommandKind.GET_ORDER, {"order_id": i + 1})
        sent_until = time.time()
        broker = build_broker(system.settings(), client.url)  # a client sends none delayed
        for _ in range(3):  # three commands delayed by ten minutes
            envelope = new_envelope(
                CommandKind.REGISTER_ORDER, JOBCENTRE, {"order": order_doc()}, key=client.key
            )
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name="jobordre.commands",
                actor_name="register_order",
                args=(envelope.to_json(),),
                kwargs={},
                options={},
            )
            broker.enqueue(message, delay=600_000)
        broker.close()

    asked = time.time()
    document = snapshot(system)
    answered = time.time()
    queues = by_name(document)
    queries, commands = queues["jobordre.queries"], queues["jobordre.commands"]
    assert (queries["ready"], queries["delayed"], queries["in_flight"]) == (50, 0, 0)
    assert (commands["ready"], commands["delayed"], commands["in_flight"]) == (0, 3, 0)
    assert (queries["dead_broker"], queries["dead_store"]) == (0, 2)
    assert (commands["dead_broker"], commands["dead_store"]) == (0, 1)
    # The oldest ready query was sent between sent_from and sent_until.
    assert asked - sent_until - 0.01 <= queries["oldest_age_s"] <= answered - sent_from + 0.01
    assert commands["oldest_age_s"] is None
    assert document["workers"] == [] and document["jobs"] == []

    human = system.cli("queues")
    assert human.code == 0
    [line] = [row for row in human.out.splitlines() if "jobordre.queries" in row]
    cells = [cell.strip() for cell in line.split("│")[1:-1]]
    assert cells[:5] == ["jobordre.queries", "50", "0", "0", "0/2"]


def test_with_a_worker_in_flight_done_failed_and_durations_are_true(bare_system: System) -> None:
    system = bare_system
    worker = system.start_worker(
        threads=2, JOBORDRE_SQLITE_BUSY_TIMEOUT_MS="60000", JOBORDRE_MAX_RETRIES="0"
    )
    # One poison query: a corrupt row makes get_order crash; no retries, so it is dead at once.
    path = system.home / "order.json"
    path.write_text(json.dumps(order_doc()))
    order = system.json("order", "register", "--file", str(path), "--as", JOBCENTRE)
    with sqlite3.connect(system.db) as conn:
        conn.execute("UPDATE orders SET doc = '{\"broken\": true}' WHERE id = ?", (order["id"],))
    system.json("order", "get", str(order["id"]), "--as", JOBCENTRE, expect=7)

    hold_s = 2.0
    with client_of(system) as client, write_lock(system):
        ids = one_running_rest_queued(system, client, worker.pid, "Travl", 4)
        held_from = time.monotonic()
        [row] = snapshot(system)["workers"]
        assert (row["pid"], row["alive"], row["running"], row["in_flight"]) == (
            worker.pid,
            True,
            1,
            1,
        )
        commands = by_name(snapshot(system))["jobordre.commands"]
        assert (commands["ready"], commands["in_flight"]) == (3, 1)
        time.sleep(max(hold_s - (time.monotonic() - held_from), 0))
    wait_until(lambda: len(applied(system, ids)) == 4, 30, "the four orders")

    def figures() -> dict[str, dict[str, Any]] | None:
        kinds = jobs(snapshot(system))
        done = kinds.get("register_order", {}).get("done_last_minute")
        return kinds if done == 5 else None

    kinds = wait_until(figures, 10, "the worker to write its figures")
    register = kinds["register_order"]
    assert (register["failed_last_minute"], register["samples"]) == (0, 5)
    # One of the five registrations waited out the lock, four did not. The p95 of five
    # (inclusive method) is at least 0.8 of the largest.
    assert register["p50_ms"] < 0.8 * hold_s * 1000 <= register["p95_ms"]
    assert (kinds["get_order"]["done_last_minute"], kinds["get_order"]["failed_last_minute"]) == (
        0,
        1,
    )
    after = snapshot(system)
    queries = by_name(after)["jobordre.queries"]
    assert (queries["dead_broker"], queries["dead_store"]) == (1, 1)
    assert sum(after["throughput"]["done"]) == sum(j["done_last_minute"] for j in after["jobs"])
    assert by_name(after)["jobordre.commands"]["in_flight"] == 0


def test_watch_draws_the_queues_and_stops_after_count(bare_system: System) -> None:
    Store(bare_system.db).close()
    svg = bare_system.home / "queues.svg"
    result = bare_system.cli(
        "queues", "--watch", "--count", "2", "--interval", "0.05", "--save-svg", str(svg)
    )
    assert result.code == 0, result.err
    assert "jobordre.commands" in result.out and "(no workers)" in result.out
    assert svg.read_text().startswith("<svg") and "jobordre.queries" in svg.read_text()
    refused = bare_system.cli("queues", "--watch", "--json")
    assert refused.code == 2 and json.loads(refused.out)["error"]["code"] == "validation_error"


def test_an_unreachable_broker_is_unavailable(bare_system: System) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    result = bare_system.cli("queues", "--json", JOBORDRE_REDIS_URL=down)
    assert result.code == 7
    assert json.loads(result.out)["error"]["code"] == "unavailable"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([0, 0, 0], "▁▁▁", id="all-zero"),
        pytest.param([0, 4, 8], "▁▅█", id="scaled-to-max"),
        pytest.param([], "", id="empty"),
    ],
)
def test_sparkline(values: list[float], expected: str) -> None:
    assert sparkline(values) == expected


@pytest.mark.integration
def test_the_oldest_age_counts_a_message_requeued_at_the_tail(private_redis: Any) -> None:
    from shared.settings import Settings
    from workers.ops.queues import broker_snapshot
    from workers.transport.dramatiq_redis import NAMESPACE

    client = private_redis.client()
    now_ms = int(time.time() * 1000)
    queue = f"{NAMESPACE}:jobordre.commands"
    # Sent 10 s ago and waiting at the head; then a message sent 100 s ago that recovery
    # took back from a dead worker and Dramatiq pushed onto the tail.
    for message_id, age_s in (("fresh", 10), ("requeued", 100)):
        client.hset(
            f"{queue}.msgs",
            message_id,
            json.dumps({"message_id": message_id, "message_timestamp": now_ms - age_s * 1000}),
        )
        client.rpush(queue, message_id)
    snapshot = broker_snapshot(client, Settings())
    [commands] = [q for q in snapshot["queues"] if q["name"] == "jobordre.commands"]
    assert 100 <= commands["oldest_age_s"] < 110
