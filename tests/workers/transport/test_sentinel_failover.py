"""Broker failover: Redis Sentinel promotes the replica when the master is SIGKILLed.

A real master, a replica and three sentinels run on free loopback ports; real ``jobordre
worker`` processes and in-test clients reach them only through a ``redis+sentinel://``
URL. The master dies in the middle of a few hundred order registrations. Afterwards every
command was applied exactly once: either its client got the reply, or it got
``unavailable`` and its resend with the same command id applied it. Clients, workers and
a fresh ops command all serve from the promoted replica.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.commands import CommandKind
from shared.errors import Unavailable
from shared.redis_url import sentinel_url
from tests.conftest import RedisServer, System, free_port, start_redis, wait_until
from tests.factories import order_doc
from workers.client import Client

pytestmark = pytest.mark.integration

#: The name the sentinels monitor the master under.
MASTER_NAME = "jobordre"
#: How long a silent master is taken for down; low so the test is quick (production: 5000+).
DOWN_AFTER_MS = 1_000
#: Commands sent in all, and after how many successes the master is killed.
COMMANDS = 300
KILL_AFTER = 100
JOBCENTRE = "jobcentre:101"


@dataclass
class SentinelSet:
    """A master, its replica and three sentinels, all on free loopback ports."""

    master: RedisServer
    replica: RedisServer
    sentinel_ports: list[int]
    sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return sentinel_url([("127.0.0.1", port) for port in self.sentinel_ports], MASTER_NAME)

    def master_port(self) -> int | None:
        """The master's port as a majority of the sentinels name it, else None."""
        named: list[int] = []
        for port in self.sentinel_ports:
            probe = redis.Redis(port=port, socket_timeout=1)
            try:
                address: Any = probe.sentinel_get_master_addr_by_name(MASTER_NAME)
                if address:
                    named.append(int(address[1]))
            except redis.RedisError:
                pass
            finally:
                probe.close()
        for port in set(named):
            if named.count(port) >= 2:
                return port
        return None

    def ready(self) -> bool:
        """The replica is in sync with the master, and every sentinel sees the master, the
        replica and the two other sentinels."""
        master = redis.Redis(port=self.master.port, socket_timeout=1, decode_responses=True)
        try:
            replication: Any = master.info("replication")
        except redis.RedisError:
            return False
        finally:
            master.close()
        replicas = [v for k, v in replication.items() if k.startswith("slave")]
        if not any(isinstance(r, dict) and r.get("state") == "online" for r in replicas):
            return False
        for port in self.sentinel_ports:
            probe = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
            try:
                state: Any = probe.sentinel_master(MASTER_NAME)
            except redis.RedisError:
                return False
            finally:
                probe.close()
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        return True

    def stop(self) -> None:
        for process in self.sentinels:
            process.terminate()
        for process in self.sentinels:
            process.wait(10)
        self.replica.stop()
        self.master.stop()


def start_sentinel(workdir: Path, port: int, master_port: int) -> subprocess.Popen[bytes]:
    """``redis-server --sentinel`` with a config file of its own (sentinels rewrite it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sentinel.conf"
    config.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f"dir {workdir}\n"
        f"logfile {workdir / 'sentinel.log'}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        f"sentinel parallel-syncs {MASTER_NAME} 1\n"
    )
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is not installed"
    return subprocess.Popen(
        [binary, str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    master = start_redis(tmp_path / "master")
    replica = start_redis(
        tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(master.port))
    )
    deployment = SentinelSet(master, replica, [free_port() for _ in range(3)])
    try:
        for number, port in enumerate(deployment.sentinel_ports):
            deployment.sentinels.append(
                start_sentinel(tmp_path / f"sentinel-{number}", port, master.port)
            )
        wait_until(deployment.ready, 30, "three sentinels that see the master and replica")
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture
def sentinel_system(sentinel_set: SentinelSet, tmp_path: Path) -> Iterator[System]:
    """A SQLite store and a worker process that know the broker only by its Sentinel URL."""
    home = tmp_path / "home"
    home.mkdir()
    broker = RedisServer(
        sentinel_set.master.port, sentinel_set.master.process, home, custom_url=sentinel_set.url
    )
    running = System(broker, home)
    running.start_worker(threads=4)
    yield running
    running.stop_workers()


@dataclass
class Sender:
    """Sends registrations with fixed command ids, one after the other; resends on
    ``unavailable`` with the same id, as the README tells a user to."""

    client: Client
    #: monotonic time of every successful reply, in order.
    successes: list[float] = field(default_factory=list)
    #: command ids whose first try (or a later one) ended in ``unavailable``.
    unavailable: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        try:
            for number in range(COMMANDS):
                self.register(number)
        except BaseException as error:  # reported by the test, never lost in the thread
            self.errors.append(error)

    def register(self, number: int) -> None:
        command_id = f"failover-{number:04d}"
        payload = {"order": order_doc(title=f"Failover-ordre {number:04d}")}
        deadline = time.monotonic() + 120
        while True:
            try:
                result = self.client.call(
                    CommandKind.REGISTER_ORDER, payload, command_id=command_id
                )
            except Unavailable:
                self.unavailable[command_id] = self.unavailable.get(command_id, 0) + 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            assert result["status"] == "processing"
            self.successes.append(time.monotonic())
            return


def test_a_master_killed_under_load_loses_no_command_and_applies_none_twice(
    sentinel_set: SentinelSet, sentinel_system: System
) -> None:
    old_master, new_master = sentinel_set.master.port, sentinel_set.replica.port
    assert sentinel_set.master_port() == old_master
    client = Client(sentinel_system.settings(reply_timeout_ms=5_000), JOBCENTRE)
    sender = Sender(client)
    thread = threading.Thread(target=sender.run, name="sender")
    try:
        thread.start()
        wait_until(lambda: len(sender.successes) >= KILL_AFTER or sender.errors, 60, "load")
        sentinel_set.master.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        sentinel_set.master.process.wait(10)
        thread.join(180)
        assert not thread.is_alive(), "the sender is still sending after 180 s"
        assert not sender.errors, repr(sender.errors)

        # Sentinel promoted the replica, and the client's pool found it by itself
        # (``master_address`` is what a pool last learnt, not a fresh question).
        assert sentinel_set.master_port() == new_master
        pool: Any = client.redis.connection_pool
        assert pool.master_address == ("127.0.0.1", new_master)
        assert len(sender.successes) == COMMANDS
        after_kill = [t for t in sender.successes if t > killed_at]
        assert KILL_AFTER <= COMMANDS - len(after_kill) < COMMANDS  # killed mid-way
        gaps = [b - a for a, b in zip(sender.successes, sender.successes[1:], strict=False)]
        print(
            f"\nfailover: longest time without a reply {max(gaps):.2f} s; "
            f"kill -> first success {after_kill[0] - killed_at:.2f} s; "
            f"{len(sender.unavailable)} commands got `unavailable` and were resent "
            f"({sum(sender.unavailable.values())} resends)"
        )
    finally:
        thread.join(180)
        client.close()

    # Exactly once: every title once in the orders, every command id once in the ledger.
    titles = sentinel_system.sql(
        "SELECT title, COUNT(*) FROM orders WHERE title LIKE 'Failover-ordre %' GROUP BY title"
    )
    assert sorted(tuple(row) for row in titles) == [
        (f"Failover-ordre {n:04d}", 1) for n in range(COMMANDS)
    ]
    ledger = sentinel_system.sql(
        "SELECT command_id, outcome FROM commands WHERE command_id LIKE 'failover-%'"
    )
    assert sorted(row[0] for row in ledger) == [f"failover-{n:04d}" for n in range(COMMANDS)]

    # The worker that lived through the failover still serves fresh CLI commands, and the
    # ops commands read the new master.
    snapshot = sentinel_system.json("queues")
    commands = next(q for q in snapshot["queues"] if q["name"] == "jobordre.commands")
    assert commands["ready"] == 0, snapshot  # nothing left behind on the new master
    assert [w["alive"] for w in snapshot["workers"]] == [True], snapshot
    health = sentinel_system.cli("health", "--json")
    assert health.code == 0, health.out + health.err
    found = sentinel_system.json("order", "get", "1", "--as", "akasse:3f")
    assert found["title"].startswith("Failover-ordre")


def test_a_send_without_reply_counts_only_once_a_replica_holds_the_command(
    sentinel_set: SentinelSet, sentinel_system: System
) -> None:
    client = Client(sentinel_system.settings(reply_timeout_ms=10_000), JOBCENTRE)
    try:
        confirmed = client.send(
            CommandKind.REGISTER_ORDER,
            {"order": order_doc(title="Bekræftet af replika")},
            command_id="no-wait-0001",
        )
        assert client.wait(confirmed)["title"] == "Bekræftet af replika"

        sentinel_set.replica.process.send_signal(signal.SIGKILL)
        sentinel_set.replica.process.wait(10)
        with pytest.raises(Unavailable, match="no replica confirmed it") as refused:
            client.send(
                CommandKind.REGISTER_ORDER,
                {"order": order_doc(title="Kun på master")},
                command_id="no-wait-0002",
            )
        assert "--command-id no-wait-0002" in refused.value.message
        # It did reach the master, so it is applied (once); only its safety was unsure.
        assert client.wait("no-wait-0002")["title"] == "Kun på master"
        # A command whose client waits for the reply needs no replica: the reply proves it.
        registered = client.call(
            CommandKind.REGISTER_ORDER, {"order": order_doc(title="Svar uden replika")}
        )
        assert registered["title"] == "Svar uden replika"
    finally:
        client.close()


def test_the_notifiers_event_stream_follows_the_failover(sentinel_set: SentinelSet) -> None:
    from notifier.source import STREAM_START, RedisEventStream
    from shared.events import AUTHORITIES, Wake, audience_stream_key
    from tests.notifier.fakes import ME
    from workers.transport.redis_connection import connect_redis

    prefix = "jobordre-failover"
    relay = connect_redis(sentinel_set.url, socket_timeout=5)
    stream = RedisEventStream(sentinel_set.url, prefix, ME)
    key = audience_stream_key(prefix, AUTHORITIES)
    try:
        for seq in (1, 2):
            relay.xadd(key, {"wake": Wake(f"e{seq}", seq).to_json()})
        assert relay.wait(1, 5_000) == 1  # the replica holds both before the master dies
        before = stream.read(STREAM_START, 1)
        assert [header.seq for _, header in before if header] == [1, 2]

        sentinel_set.master.process.send_signal(signal.SIGKILL)
        sentinel_set.master.process.wait(10)
        wait_until(
            lambda: sentinel_set.master_port() == sentinel_set.replica.port, 30, "a promotion"
        )

        def pushed_on_the_new_master() -> bool:
            try:
                relay.xadd(key, {"wake": Wake("e3", 3).to_json()})
            except redis.RedisError:
                return False
            return True

        wait_until(pushed_on_the_new_master, 30, "the relay's client to find the new master")

        def read_on() -> list[Any] | None:
            try:
                return stream.read(before[-1][0], 1) or None
            except Unavailable:
                return None  # the notifier retries the same way (notifier/service.py)

        after = wait_until(read_on, 30, "the stream to read on from the new master")
        assert [header.seq for _, header in after if header] == [3]
    finally:
        stream.close()
        relay.close()
