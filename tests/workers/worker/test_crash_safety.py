"""Crash and load safety against real Redis and real worker processes.

Workers are SIGKILLed in the middle of thousands of commands, Redis restarts under load,
two organisations race on one order: afterwards every accepted command took effect exactly
once, the placement log has no gap and no double, and SQLite's integrity check is ok.
"""

from __future__ import annotations

import itertools
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.commands import CommandKind
from shared.errors import JobordreError, Unavailable, VersionConflict
from shared.identifiers import validate_cpr
from tests.conftest import RedisServer, System, start_redis
from tests.factories import order_doc
from workers.client import Client

pytestmark = pytest.mark.integration

K = CommandKind
KBH, AKASSE = "jobcentre:101", "akasse:3f"


def cprs(count: int) -> list[str]:
    """Distinct CPR numbers with valid dates (1 Jan 1950 + n days, serial 1000)."""
    from datetime import date, timedelta

    people = []
    for n in range(count):
        born = date(1950, 1, 1) + timedelta(days=n)
        people.append(validate_cpr(born.strftime("%d%m%y") + "1000"))
    return people


#: Clients a test made; closed after it, so no socket is left for the garbage collector.
_clients: list[Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client_for(system: System, principal: str) -> Client:
    client = Client(system.settings(reply_timeout_ms=2_000), principal)
    _clients.append(client)
    return client


class Ledger:
    """What the test sent, and which commands were accepted (answered ok)."""

    def __init__(self, after_send: Any = None) -> None:
        self.sent: dict[str, tuple[Client, CommandKind, dict[str, Any]]] = {}
        self.accepted: dict[str, dict[str, Any]] = {}
        self.after_send = after_send
        self.refused_while_down = 0

    def send(self, client: Client, kind: CommandKind, payload: dict[str, Any]) -> str:
        # The id is chosen once: a send that failed may still have reached Redis, so a
        # resend must be recognisable as the same command.
        command_id = uuid.uuid4().hex
        while True:
            try:
                client.send(kind, payload, command_id=command_id)
                break
            except Unavailable:
                self.refused_while_down += 1
                time.sleep(0.2)  # Redis is restarting: try again
        self.sent[command_id] = (client, kind, payload)
        if self.after_send is not None:
            self.after_send(len(self.sent))
        return command_id

    def settle(self, deadline_s: float) -> None:
        """Collect every reply; resend (same command id) whatever got no answer."""
        end = time.monotonic() + deadline_s
        while len(self.accepted) < len(self.sent):
            assert time.monotonic() < end, (
                f"{len(self.sent) - len(self.accepted)} commands never answered"
            )
            for command_id, (client, kind, payload) in self.sent.items():
                if command_id in self.accepted:
                    continue
                try:
                    self.accepted[command_id] = client.wait(command_id, timeout_ms=200)
                except Unavailable:
                    try:
                        client.send(kind, payload, command_id=command_id)
                    except Unavailable:
                        time.sleep(0.2)


def check_store(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Every placement has exactly one registration entry, and its entries form a chain.
        rows = conn.execute(
            "SELECT placement_id, from_status, to_status FROM placement_log ORDER BY id"
        ).fetchall()
    chains: dict[int, list[tuple[str | None, str]]] = {}
    for placement_id, source, target in rows:
        chains.setdefault(placement_id, []).append((source, target))
    for placement_id, chain in chains.items():
        assert chain[0] == (None, "placed"), placement_id
        for (_, before), (after_from, _) in itertools.pairwise(chain):
            assert before == after_from, f"placement {placement_id}: {chain}"


def run_load(system: System, ledger: Ledger, people: list[str], orders: list[int]) -> None:
    """Place every person on an order, then move half of them to interview."""
    kbh, akasse = client_for(system, KBH), client_for(system, AKASSE)
    placed = []
    for n, cpr in enumerate(people):
        client = kbh if n % 2 else akasse
        command = ledger.send(
            client, K.REGISTER_PLACEMENT, {"order_id": orders[n % len(orders)], "cpr": cpr}
        )
        placed.append((client, command))
    ledger.settle(deadline_s=240)
    for client, command in placed[::2]:
        placement = ledger.accepted[command]
        ledger.send(
            client,
            K.CHANGE_PLACEMENT_STATUS,
            {
                "order_id": placement["order_id"],
                "placement_id": placement["id"],
                "status": "interview",
            },
        )


def register_orders(system: System, count: int) -> list[int]:
    client = client_for(system, KBH)
    return [
        client.call(K.REGISTER_ORDER, {"order": order_doc()}, timeout_ms=30_000)["id"]
        for _ in range(count)
    ]


def test_sigkilled_workers_lose_nothing_and_apply_nothing_twice(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    system = System(private_redis, tmp_path / "home")
    system.home.mkdir()
    extra = {"JOBORDRE_HEARTBEAT_TIMEOUT_MS": "3000", "JOBORDRE_MAINTENANCE_INTERVAL_MS": "500"}
    steady = system.start_worker(processes=1, threads=4, **extra)
    victim = system.start_worker(processes=1, threads=4, **extra)
    try:
        orders = register_orders(system, 20)
        people = cprs(2000)
        ledger = Ledger()
        stop = threading.Event()

        def killer() -> None:
            nonlocal victim
            while not stop.wait(1.5):
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                victim = system.start_worker(processes=1, threads=4, **extra)

        chaos = threading.Thread(target=killer, daemon=True)
        chaos.start()
        run_load(system, ledger, people, orders)
        ledger.settle(deadline_s=240)
        stop.set()
        chaos.join(30)
        assert steady.poll() is None
        with sqlite3.connect(system.db) as conn:
            placements = conn.execute("SELECT COUNT(*) FROM placements").fetchone()[0]
            interviews = conn.execute(
                "SELECT COUNT(*) FROM placement_log WHERE to_status = 'interview'"
            ).fetchone()[0]
        assert placements == len(people)
        assert interviews == len(people) // 2
        check_store(system.db)
    finally:
        system.stop_workers()


def test_a_redis_restart_loses_no_accepted_command(tmp_path: Path) -> None:
    redis_dir = tmp_path / "redis"
    server = start_redis(redis_dir, persistent=True)
    system = System(server, tmp_path / "home")
    system.home.mkdir()
    system.start_worker(processes=1, threads=4)
    try:
        orders = register_orders(system, 5)
        people = cprs(600)

        def restart() -> None:
            server.stop()
            restarted = start_redis(redis_dir, port=server.port, persistent=True)
            system.redis.process = restarted.process

        bounce = threading.Thread(target=restart)
        # Halfway through the placements, Redis goes down and comes back.
        ledger = Ledger(after_send=lambda sent: sent == 300 and bounce.start())
        run_load(system, ledger, people, orders)
        bounce.join(60)
        ledger.settle(deadline_s=240)
        assert not bounce.is_alive()
        with sqlite3.connect(system.db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM placements").fetchone()[0] == len(people)
        check_store(system.db)
    finally:
        system.stop_workers()
        system.redis.stop()


def test_concurrent_updates_one_wins_the_other_gets_a_conflict(system: System) -> None:
    jobcentre, akasse = client_for(system, KBH), client_for(system, AKASSE)
    outcomes: list[str] = []
    for _ in range(20):
        order = jobcentre.call(K.REGISTER_ORDER, {"order": order_doc()}, timeout_ms=30_000)
        racers = [
            (
                client,
                client.send(
                    K.UPDATE_ORDER,
                    {"order_id": order["id"], "expected_version": 1, "patch": {"positions": n + 2}},
                ),
            )
            for n, client in enumerate((jobcentre, akasse))
        ]
        results = []
        for client, command in racers:
            try:
                client.wait(command, timeout_ms=30_000)
                results.append("ok")
            except VersionConflict:
                results.append("version_conflict")
            except JobordreError as error:  # "database is locked" must never reach a user
                results.append(f"{error.code}: {error.message}")
        assert sorted(results) == ["ok", "version_conflict"], results
        outcomes += results
        final = jobcentre.call(K.GET_ORDER, {"order_id": order["id"]}, timeout_ms=30_000)
        assert final["version"] == 2
    assert outcomes.count("ok") == 20
