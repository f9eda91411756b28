"""Several hosts: two worker groups on one Redis and one PostgreSQL, one SIGKILLed mid-load.

Each group is ``jobordre worker --processes 2 --threads 4`` with a ``JOBORDRE_HOME`` of its
own (no file shared between them). Where the test runs as root and ``ip netns`` works (here
and in CI), each group also runs in a network namespace of its own, linked to the test's
namespace by a veth pair, and a UTS namespace with its own host name (``host-a``,
``host-b``): it reaches Redis and PostgreSQL over its link, as a second machine would, and
its loopback, abstract sockets and host name are its own. Elsewhere both groups run in the
test's namespaces (separate homes only); the test prints which.

No traffic leaves the machine: the links are /30 networks between the test's namespace
and each group's, on addresses no route of the machine covers, and Redis and PostgreSQL
listen on loopback and those links only.

A client thread sends a few hundred commands with fixed command ids (orders, placements,
status changes; each phase sent at once, so the workers always hold a backlog), resending
with the same id whatever is not answered in time. Host A's whole process group is
SIGKILLed while it holds messages; host B's maintenance requeues them after the heartbeat
timeout and processes them. Afterwards: every command is in the ledger once with outcome
``ok``, every order exists once, every placement's log is the unbroken chain of its status
changes, each applied once, event ``seq`` runs 1..N without a gap, and the relay pushed
every event to the Redis stream.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import redis

from shared.commands import CommandKind
from shared.errors import Unavailable
from shared.events import parse_entry, stream_key
from shared.settings import Settings
from tests import network_namespaces
from tests.conftest import JOBORDRE, RedisServer, free_port, start_redis, wait_until
from tests.factories import CPR_1, CPR_2, order_doc
from tests.postgres_cluster import PostgresCluster, start_cluster
from workers.client import Client
from workers.ops.queues import broker_snapshot
from workers.transport.broker import COMMANDS_QUEUE, QUERIES_QUEUE
from workers.transport.dramatiq_redis import acks_key, all_queues

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

JOBCENTRE = "jobcentre:101"
#: Orders the load registers; each gets two placements and a few status changes.
ORDERS = 60
#: The worker groups; the first is killed.
HOSTS = ("host-a", "host-b")
#: How long the client waits for a reply before it resends the command, in milliseconds.
REPLY_WAIT_MS = 4_000
#: The bound on recovery: heartbeat timeout + maintenance interval (25 s by default, the
#: settings the groups run with) plus the time to work off the requeued messages.
RECOVERY_BOUND_S = 90
#: Dramatiq's key namespace on Redis.
DRAMATIQ = "dramatiq"

#: Runs as the first program in a group's UTS namespace: names the host, then runs the
#: worker in its place (so the worker is the process the test started).
SET_HOSTNAME_AND_EXEC = (
    "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execv(sys.argv[2], sys.argv[2:])"
)


# -- The hosts' network ---------------------------------------------------------------


@dataclass
class Link:
    """How one group's host reaches the servers."""

    name: str
    #: The network namespace the group runs in; ``None``: the test's own.
    namespace: str | None
    #: The address Redis and PostgreSQL listen on for this host.
    server_address: str
    #: The host's link network, allowed to log in to PostgreSQL.
    network: str | None

    def command(self, *argv: str) -> list[str]:
        """``argv`` run on this host."""
        if self.namespace is None:
            return list(argv)
        return [
            "ip",
            "netns",
            "exec",
            self.namespace,
            "unshare",
            "--uts",
            "--",
            sys.executable,
            "-c",
            SET_HOSTNAME_AND_EXEC,
            self.name,
            *argv,
        ]


def _delete_namespaces(names: list[str]) -> None:
    for name in names:  # the veth pair goes with its namespace
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)


def make_links() -> tuple[list[Link], list[str]]:
    """One namespace and veth link per host if this machine allows it (see the module
    docstring); else every host on loopback. Returns the links and the namespaces made."""
    if not network_namespaces.available():
        return [Link(name, None, "127.0.0.1", None) for name in HOSTS], []
    subnet = network_namespaces.unrouted_subnet(29)
    if subnet is None:
        pytest.fail("no free 10.x network for the test namespaces")
    tag = uuid.uuid4().hex[:6]
    links: list[Link] = []
    made: list[str] = []
    try:
        for i, name in enumerate(HOSTS):
            namespace = f"jobordre-{tag}-{name}"
            outside, inside = f"jo{tag}{i}o", f"jo{tag}{i}i"
            network = ipaddress.IPv4Network(f"{subnet.network_address + 4 * i}/30")
            # Recorded first: a namespace made before a later step fails is deleted too.
            made.append(namespace)
            server, _ = network_namespaces.host_namespace(namespace, outside, inside, network)
            links.append(Link(name, namespace, str(server), str(network)))
    except subprocess.CalledProcessError as error:
        _delete_namespaces(made)
        print(f"no network namespaces ({error.stderr.decode().strip()}): hosts on loopback")
        return [Link(name, None, "127.0.0.1", None) for name in HOSTS], []
    return links, made


@dataclass
class Servers:
    """Redis and PostgreSQL, reachable from the test (loopback) and from every host."""

    links: list[Link]
    redis: RedisServer
    postgres: PostgresCluster
    database: str

    def redis_url(self, link: Link | None = None) -> str:
        address = link.server_address if link else "127.0.0.1"
        return f"redis://{address}:{self.redis.port}/0"

    def database_url(self, link: Link | None = None) -> str:
        address = link.server_address if link else "127.0.0.1"
        return f"postgresql://jobordre:jobordre@{address}:{self.postgres.port}/{self.database}"

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url()) as conn:
            return list(conn.execute(statement, params).fetchall())


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Host links, then a private redis-server and PostgreSQL cluster listening on them."""
    links, namespaces = make_links()
    addresses = sorted({"127.0.0.1", *(link.server_address for link in links)})
    cluster: PostgresCluster | None = None
    server: RedisServer | None = None
    try:
        # Protected mode refuses clients from other than loopback without a password:
        # here the only others are the hosts' private links.
        bind = ("--bind", *addresses, "--protected-mode", "no")
        server = start_redis(tmp_path / "redis", extra_args=bind)
        networks = [link.network for link in links if link.network]
        cluster = start_cluster(free_port(), listen=addresses, clients=networks)
        database = cluster.fresh_database().rsplit("/", 1)[1]
        yield Servers(links, server, cluster, database)
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.datadir.parent, ignore_errors=True)
        _delete_namespaces(namespaces)


# -- The worker groups ------------------------------------------------------------------


@dataclass
class Group:
    """``jobordre worker --processes 2 --threads 4`` on one host, in a process group."""

    link: Link
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.home / "worker.log"

    def start(self, servers: Servers) -> None:
        self.home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
        env.update(
            JOBORDRE_HOME=str(self.home),
            JOBORDRE_REDIS_URL=servers.redis_url(self.link),
            JOBORDRE_DATABASE_URL=servers.database_url(self.link),
            JOBORDRE_MIN_BACKOFF_MS="50",
            JOBORDRE_MAX_BACKOFF_MS="500",
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.link.command(str(JOBORDRE), "worker", "--processes", "2", "--threads", "4"),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the whole host dies at once
            )

    def started(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.log.read_text(errors="replace")
        return self.log.read_bytes().count(b"worker started") >= 2

    def pids(self) -> set[int]:
        """Every process of the group (the supervisor and its worker processes)."""
        assert self.process is not None
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[2]) == self.process.pid:  # the process group id
                found.add(int(stat.parent.name))
        return found

    def kill(self) -> None:
        """SIGKILL every process of the group at once, as a host losing power."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def groups(servers: Servers, tmp_path: Path) -> Iterator[list[Group]]:
    """Both hosts' worker groups, started and ready."""
    started = [Group(link, tmp_path / link.name) for link in servers.links]
    try:
        for group in started:
            group.start(servers)
        for group in started:
            wait_until(group.started, 60, f"the workers of {group.link.name}")
        yield started
    finally:
        for group in started:
            group.stop()


# -- The load ---------------------------------------------------------------------------

#: (command id, kind, payload)
Command = tuple[str, CommandKind, dict[str, Any]]


@dataclass
class Load:
    """The client's side: phases of commands, each sent at once and settled."""

    client: Client
    resends: int = 0
    sent: list[str] = field(default_factory=list)
    #: Per order index: its id, and its placements' ids.
    orders: list[int] = field(default_factory=list)
    placements: list[list[int]] = field(default_factory=list)
    finished_at: float | None = None
    error: BaseException | None = None

    def settle(self, commands: list[Command]) -> dict[str, dict[str, Any]]:
        """Send every command, then collect every reply; what is not answered within
        :data:`REPLY_WAIT_MS` is sent again with the same command id."""
        for command_id, kind, payload in commands:
            self.client.send(kind, payload, command_id=command_id)
            self.sent.append(command_id)
        results: dict[str, dict[str, Any]] = {}
        pending = commands
        deadline = time.monotonic() + 4 * RECOVERY_BOUND_S
        while pending:
            late: list[Command] = []
            for command in pending:
                # After the first timeout of a round, only collect what is already there.
                timeout_ms = 100 if late else REPLY_WAIT_MS
                try:
                    results[command[0]] = self.client.wait(command[0], timeout_ms)
                except Unavailable:
                    late.append(command)
            assert time.monotonic() < deadline, f"{len(late)} commands never answered"
            for command_id, kind, payload in late:
                self.client.send(kind, payload, command_id=command_id)
                self.resends += 1
            pending = late
        return results

    def run(self) -> None:
        try:
            self._phases()
        except BaseException as error:  # re-raised by the test's thread
            self.error = error
        self.finished_at = time.monotonic()

    def _phases(self) -> None:
        k = CommandKind
        registered = self.settle(
            [
                (f"hosts-order-{i:03d}", k.REGISTER_ORDER, {"order": order_doc(title=title(i))})
                for i in range(ORDERS)
            ]
        )
        self.orders = [registered[f"hosts-order-{i:03d}"]["id"] for i in range(ORDERS)]
        placed = self.settle(
            [
                (
                    f"hosts-place-{i:03d}-{j}",
                    k.REGISTER_PLACEMENT,
                    {"order_id": order, "cpr": cpr, "referral": j == 0},
                )
                for i, order in enumerate(self.orders)
                for j, cpr in enumerate((CPR_1, CPR_2))
            ]
        )
        self.placements = [
            [placed[f"hosts-place-{i:03d}-{j}"]["id"] for j in range(2)] for i in range(ORDERS)
        ]
        self.settle(
            [self._person(i, 0, "interview") for i in range(ORDERS)]
            + [self._order(i, "inactivated") for i in range(ORDERS) if i % 3 == 1]
        )
        self.settle(
            [self._person(i, 0, "hired" if i % 2 == 0 else "not_hired") for i in range(ORDERS)]
            + [self._person(i, 1, "withdrawn") for i in range(ORDERS) if i % 2 == 0]
            + [self._order(i, "processing") for i in range(ORDERS) if i % 6 == 1]
            + [self._order(i, "closed_filled") for i in range(ORDERS) if i % 3 == 2]
        )

    def _person(self, i: int, j: int, status: str) -> Command:
        payload = {"order_id": self.orders[i], "placement_id": self.placements[i][j]}
        return (
            f"hosts-person-{i:03d}-{j}-{status}",
            CommandKind.CHANGE_PLACEMENT_STATUS,
            {**payload, "status": status},
        )

    def _order(self, i: int, status: str) -> Command:
        payload = {"order_id": self.orders[i], "status": status}
        return (f"hosts-status-{i:03d}-{status}", CommandKind.CHANGE_ORDER_STATUS, payload)


def title(i: int) -> str:
    return f"To værter {i:03d}"


def expected_order_status(i: int) -> str:
    """What the load leaves each order at (see :meth:`Load._phases`)."""
    if i % 3 == 2:
        return "closed_filled"
    if i % 6 == 4:
        return "inactivated"
    return "processing"


def expected_log(i: int, j: int) -> list[tuple[str | None, str]]:
    """The placement log the load writes for placement ``j`` of order ``i``: each change
    once, each starting where the one before ended."""
    if j == 0:
        outcome = "hired" if i % 2 == 0 else "not_hired"
        return [(None, "placed"), ("placed", "interview"), ("interview", outcome)]
    return [(None, "placed"), ("placed", "withdrawn")] if i % 2 == 0 else [(None, "placed")]


# -- The test ---------------------------------------------------------------------------


def held_messages(client: redis.Redis, worker_ids: list[str]) -> dict[str, set[bytes]]:
    """The messages these workers fetched and have not acked, per queue."""
    held: dict[str, set[bytes]] = {}
    for queue in all_queues((COMMANDS_QUEUE, QUERIES_QUEUE)):
        for worker_id in worker_ids:
            members = cast("set[bytes]", client.smembers(acks_key(DRAMATIQ, worker_id, queue)))
            held.setdefault(queue, set()).update(members)
    return held


def still_queued(client: redis.Redis, held: dict[str, set[bytes]]) -> int:
    """How many of ``held`` are not acked yet (a message's body is deleted when it is)."""
    return sum(
        int(client.hexists(f"{DRAMATIQ}:{queue}.msgs", message_id))
        for queue, ids in held.items()
        for message_id in ids
    )


@pytest.mark.timeout(420)
def test_a_host_killed_mid_load_loses_nothing_and_applies_nothing_twice(
    servers: Servers, groups: list[Group], tmp_path: Path
) -> None:
    doomed, survivor = groups
    settings = Settings(
        home=tmp_path / "client",
        redis_url=servers.redis_url(),
        database_url=servers.database_url(),
    )
    isolation = "network namespaces" if doomed.link.namespace else "loopback, separate homes"
    print(f"hosts: {isolation}")
    redis_client = redis.Redis.from_url(servers.redis_url())
    client = Client(settings, JOBCENTRE)
    load = Load(client)
    sender = threading.Thread(target=load.run, name="client")
    try:
        workers = wait_until(
            lambda: (
                (found := broker_snapshot(redis_client, settings)["workers"])
                and len(found) == 4
                and found
            ),
            30,
            "both hosts' four worker processes to register",
        )
        if doomed.link.namespace:  # each group reports its own host name
            assert sorted(w["host"] for w in workers) == sorted(HOSTS * 2)
        doomed_pids = doomed.pids()
        doomed_ids = [w["id"] for w in workers if w["pid"] in doomed_pids]
        assert len(doomed_ids) == 2, doomed_ids

        sender.start()
        # Mid-way, with a backlog: the doomed host holds messages it fetched, running or
        # prefetched, as a crash leaves them.
        wait_until(
            lambda: ledger_size(servers) >= ORDERS + 40 or load.finished_at is not None,
            240,
            "the load to get under way",
        )
        for _ in range(10):
            wait_until(
                lambda: sum(map(len, held_messages(redis_client, doomed_ids).values())) >= 2,
                30,
                "host A to hold messages",
                interval_s=0.005,
            )
            # Frozen before it is looked at, so what it holds cannot be acked between the
            # look and the kill; if it drained meanwhile, it goes on and we wait again.
            assert doomed.process is not None
            os.killpg(doomed.process.pid, signal.SIGSTOP)
            if sum(map(len, held_messages(redis_client, doomed_ids).values())) >= 1:
                break
            os.killpg(doomed.process.pid, signal.SIGCONT)
        doomed.kill()
        killed_at = time.monotonic()
        held = held_messages(redis_client, doomed_ids)
        held_count = sum(map(len, held.values()))
        applied_at_kill = ledger_size(servers)
        assert held_count >= 1 and load.finished_at is None

        wait_until(
            lambda: still_queued(redis_client, held) == 0,
            RECOVERY_BOUND_S,
            "host B to take over and process what host A held",
            interval_s=0.05,
        )
        recovered_s = time.monotonic() - killed_at
        sender.join(4 * RECOVERY_BOUND_S)
        assert not sender.is_alive(), "the client never finished"
        if load.error is not None:
            raise load.error
        assert load.finished_at is not None
        finished_s = load.finished_at - killed_at
        print(
            f"host A killed after {applied_at_kill} commands, holding {held_count} messages;"
            f" they were done {recovered_s:.1f} s after the kill; the client's last reply"
            f" came {finished_s:.1f} s after it ({load.resends} resends); requeued by:"
            f" {requeue_lines(survivor)}"
        )
        assert recovered_s < RECOVERY_BOUND_S
        wait_until(lambda: queue_drained(redis_client, settings), 60, "the queues to drain")
        wait_until(lambda: relay_done(servers), 30, "the relay to push every event")

        assert_every_command_applied_once(servers, load)
        assert_every_order_once(servers, load)
        assert_every_placement_log_unbroken(servers, load)
        assert_event_seq_gap_free_and_relayed(servers, redis_client, settings)
        assert servers.sql("SELECT COUNT(*) FROM dead_letters") == [(0,)]
        # Each host worked from its own home: no store file, no shared file.
        assert not (doomed.home / "jobordre.db").exists()
        assert not (survivor.home / "jobordre.db").exists()
        dead = [
            w for w in broker_snapshot(redis_client, settings)["workers"] if w["pid"] in doomed_pids
        ]
        assert [(w["alive"], w["in_flight"]) for w in dead] == [(False, 0), (False, 0)]
        assert survivor.process is not None and survivor.process.poll() is None
    finally:
        if sender.is_alive():
            sender.join(4 * RECOVERY_BOUND_S)
        client.close()
        redis_client.close()


def ledger_size(servers: Servers) -> int:
    [(n,)] = servers.sql("SELECT COUNT(*) FROM commands WHERE principal = %s", (JOBCENTRE,))
    return int(n)


def requeue_lines(group: Group) -> str:
    # Each of the host's processes may log the same pass (the requeue itself is atomic).
    lines = {
        line.split("requeued", 1)[1].strip()
        for line in group.log.read_text(errors="replace").splitlines()
        if "requeued" in line
    }
    # Dramatiq's stock maintenance also runs, by chance, on any broker call (host B's
    # consumers' fetches, the client's sends), and logs nothing.
    return "; ".join(sorted(lines)) or "Dramatiq's stock maintenance (not logged)"


def queue_drained(client: redis.Redis, settings: Settings) -> bool:
    snapshot = broker_snapshot(client, settings)
    return all(q["ready"] == q["in_flight"] == q["delayed"] == 0 for q in snapshot["queues"])


def relay_done(servers: Servers) -> bool:
    return servers.sql(
        "SELECT COUNT(*) FROM events WHERE seq > (SELECT pushed_seq FROM relay_mark)"
    ) == [(0,)]


def assert_every_command_applied_once(servers: Servers, load: Load) -> None:
    rows = servers.sql(
        "SELECT command_id, outcome FROM commands WHERE principal = %s ORDER BY command_id",
        (JOBCENTRE,),
    )
    assert len(load.sent) == len(set(load.sent)) == 380  # a few hundred, ids fixed
    assert rows == [(command_id, "ok") for command_id in sorted(set(load.sent))]


def assert_every_order_once(servers: Servers, load: Load) -> None:
    rows = servers.sql("SELECT id, title, status FROM orders ORDER BY title")
    assert [row[1] for row in rows] == [title(i) for i in range(ORDERS)]
    assert [row[0] for row in rows] == load.orders
    assert [row[2] for row in rows] == [expected_order_status(i) for i in range(ORDERS)]


def assert_every_placement_log_unbroken(servers: Servers, load: Load) -> None:
    statuses = dict(servers.sql("SELECT id, status FROM placements"))
    logs: dict[int, list[tuple[str | None, str]]] = {}
    for placement_id, from_status, to_status in servers.sql(
        "SELECT placement_id, from_status, to_status FROM placement_log ORDER BY id"
    ):
        logs.setdefault(placement_id, []).append((from_status, to_status))
    assert len(statuses) == 2 * ORDERS
    for i, ids in enumerate(load.placements):
        for j, placement_id in enumerate(ids):
            log = logs.get(placement_id)
            assert log == expected_log(i, j), (i, j)
            assert statuses[placement_id] == log[-1][1], (i, j)


def assert_event_seq_gap_free_and_relayed(
    servers: Servers, client: redis.Redis, settings: Settings
) -> None:
    seqs = [row[0] for row in servers.sql("SELECT seq FROM events ORDER BY seq")]
    assert len(seqs) >= ORDERS * 5
    assert seqs == list(range(1, len(seqs) + 1))
    streamed = set()
    stream = client.xrange(stream_key(settings.redis_prefix))
    entries = cast("list[tuple[bytes, dict[Any, Any]]]", stream)
    for _, fields in entries:
        header = parse_entry(fields)
        assert header is not None
        streamed.add(header.seq)
    assert streamed == set(seqs)
