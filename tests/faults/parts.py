"""The real parts a nemesis run starts, breaks and mends: the hosts' network, Redis under
Sentinel, a PostgreSQL primary with a synchronous standby, worker hosts and notifiers.

Contract: nothing here listens beyond this machine. Every server binds one *service
address*: with network namespaces (root and ``ip netns`` work) it is a /32 on a veth pair
whose two ends both stay in the harness's namespace, reached by each host namespace over
its own /30 veth link, on a 10.x network no route of the machine covers; without them it
is 127.0.0.1 and every host runs on loopback with a home of its own (the report says
which). Everything started is stopped by :meth:`Parts.close`, namespaces and links
included.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from shared.redis_url import sentinel_url
from tests import network_namespaces
from tests.network_namespaces import ip
from tests.postgres_cluster import server_bin

#: The name the sentinels monitor the master under.
MASTER_NAME = "jobordre"
#: A silent Redis master is taken for down after this long (production: 5000+).
DOWN_AFTER_MS = 1_000
#: PostgreSQL's user and password for the store (and replication).
PG_USER = "jobordre"
PG_PASSWORD = "jobordre"
#: The store's database.
DATABASE = "jobordre"
#: Worker settings of the run: recovery within seconds, so faults resolve in a short run.
WORKER_ENV = {
    "JOBORDRE_HEARTBEAT_TIMEOUT_MS": "8000",
    "JOBORDRE_MAINTENANCE_INTERVAL_MS": "2000",
    # Dramatiq's consumer restart delay after a lost broker connection, in ms.
    "dramatiq_restart_delay": "1000",
}
#: Runs first in a host's UTS namespace: names the host, then runs the worker in its place.
SET_HOSTNAME_AND_EXEC = (
    "import os, socket, sys; socket.sethostname(sys.argv[1]); os.execv(sys.argv[2], sys.argv[2:])"
)
JOBORDRE = Path(sys.executable).parent / "jobordre"


def free_port(address: str = "127.0.0.1") -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except Exception:  # a part still starting answers with errors
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


# -- Network ------------------------------------------------------------------------------


@dataclass
class HostLink:
    name: str
    namespace: str | None
    #: The host's end of its link (inside its namespace) and the route it needs.
    inside: str | None = None
    gateway: str | None = None
    network: str | None = None

    @property
    def address(self) -> str | None:
        """The host's own address on its link (what servers see it connect from)."""
        if self.network is None:
            return None
        return str(ipaddress.ip_network(self.network).network_address + 2)

    def command(self, *argv: str) -> list[str]:
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


@dataclass
class Network:
    mode: str
    service: str
    hosts: list[HostLink]
    namespaces: list[str] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    note: str = ""

    def cut(self, host: HostLink) -> bool:
        """Take the host's link down; False where hosts have no link of their own."""
        if host.namespace is None or host.inside is None:
            return False
        ip("-n", host.namespace, "link", "set", host.inside, "down")
        return True

    def restore(self, host: HostLink) -> None:
        if host.namespace is None or host.inside is None:
            return
        ip("-n", host.namespace, "link", "set", host.inside, "up")
        # The route through the link went with it.
        ip("-n", host.namespace, "route", "replace", f"{self.service}/32", "via", str(host.gateway))

    def close(self) -> None:
        for name in self.namespaces:
            ip("netns", "del", name, check=False)
        for link in self.root_links:
            ip("link", "del", link, check=False)


def make_network(names: tuple[str, ...]) -> Network:
    """Namespaces and links for ``names`` if the machine allows, else loopback."""
    loopback = Network("loopback", "127.0.0.1", [HostLink(name, None) for name in names])
    if not network_namespaces.available():
        loopback.note = "not root or no ip/unshare"
        return loopback
    subnet = network_namespaces.unrouted_subnet(28)
    if subnet is None:
        raise RuntimeError("no free 10.x network for the nemesis namespaces")
    tag = uuid.uuid4().hex[:5]
    base = subnet.network_address
    service = str(base + 13)
    net = Network("namespaces", service, [])
    try:
        # The service address: a /32 on a veth pair that stays in this namespace.
        svc_out, svc_in = f"jn{tag}s0", f"jn{tag}s1"
        ip("link", "add", svc_out, "type", "veth", "peer", "name", svc_in)
        net.root_links.append(svc_out)
        ip("addr", "add", f"{service}/32", "dev", svc_out)
        ip("link", "set", svc_out, "up")
        ip("link", "set", svc_in, "up")
        for i, name in enumerate(names):
            namespace = f"jn-{tag}-{name}"
            outside, inside = f"jn{tag}{i}o", f"jn{tag}{i}i"
            link = ipaddress.IPv4Network(f"{base + 4 * i}/30")
            # Recorded first: a namespace made before a later step fails is deleted too.
            net.namespaces.append(namespace)
            gateway, _ = network_namespaces.host_namespace(namespace, outside, inside, link)
            ip("-n", namespace, "route", "add", f"{service}/32", "via", str(gateway))
            net.hosts.append(HostLink(name, namespace, inside, str(gateway), str(link)))
    except subprocess.CalledProcessError as error:
        net.close()
        loopback.note = f"namespaces failed: {error.stderr.decode().strip()}"
        return loopback
    net.note = f"service address {service}, host links in {subnet}"
    return net


# -- Redis under Sentinel ------------------------------------------------------------------


@dataclass
class Proc:
    """A server process that can be killed and started again with the same arguments."""

    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class RedisSet:
    service: str
    servers: dict[int, Proc]
    sentinel_ports: list[int]
    sentinels: list[Proc]

    @property
    def url(self) -> str:
        return sentinel_url([(self.service, port) for port in self.sentinel_ports], MASTER_NAME)

    def master_port(self) -> int | None:
        named: list[int] = []
        for port in self.sentinel_ports:
            probe = redis.Redis(host=self.service, port=port, socket_timeout=1)
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

    def client(self, port: int | None = None) -> redis.Redis:
        port = port or self.master_port()
        assert port is not None, "no Redis master elected"
        return redis.Redis(host=self.service, port=port, socket_timeout=5)

    def ready(self) -> bool:
        port = self.master_port()
        if port is None:
            return False
        master = self.client(port)
        try:
            replication: Any = master.info("replication")
        finally:
            master.close()
        if replication.get("role") != "master":
            return False
        online = [
            v for k, v in replication.items() if k.startswith("slave") and isinstance(v, dict)
        ]
        if not any(r.get("state") == "online" for r in online):
            return False
        for sentinel in self.sentinel_ports:
            probe = redis.Redis(
                host=self.service, port=sentinel, socket_timeout=1, decode_responses=True
            )
            try:
                state: Any = probe.sentinel_master(MASTER_NAME)
            finally:
                probe.close()
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        return True

    def close(self) -> None:
        for proc in [*self.sentinels, *self.servers.values()]:
            proc.stop()


def start_redis_set(root: Path, service: str) -> RedisSet:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    ports = [free_port(service) for _ in range(2)]
    servers: dict[int, Proc] = {}
    for i, port in enumerate(ports):
        workdir = root / f"redis-{port}"
        workdir.mkdir(parents=True)
        argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            service,
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(workdir),
            "--replica-announce-ip",
            service,
        ]
        if i == 1:
            argv += ["--replicaof", service, str(ports[0])]
        proc = Proc(argv, workdir / "redis.log")
        proc.start()
        servers[port] = proc
    sentinel_ports = [free_port(service) for _ in range(3)]
    sentinels = []
    for port in sentinel_ports:
        workdir = root / f"sentinel-{port}"
        workdir.mkdir(parents=True)
        config = workdir / "sentinel.conf"
        config.write_text(
            f"port {port}\nbind {service}\nprotected-mode no\ndir {workdir}\n"
            f"sentinel announce-ip {service}\n"
            f"sentinel monitor {MASTER_NAME} {service} {ports[0]} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        proc = Proc([binary, str(config), "--sentinel"], workdir / "sentinel.log")
        proc.start()
        sentinels.append(proc)
    found = RedisSet(service, servers, sentinel_ports, sentinels)
    wait_for(found.ready, 60, "a Redis master, its replica and three sentinels")
    return found


# -- PostgreSQL primary and synchronous standby ---------------------------------------------


@dataclass
class PgNode:
    port: int
    datadir: Path
    log: Path


@dataclass
class PgPair:
    """Two nodes on the service address; the standby streams synchronously from the primary."""

    service: str
    root: Path
    bin: Path
    user: str | None
    nodes: list[PgNode]
    primary: int = 0
    #: Whether the other node currently streams from the primary.
    standby_up: bool = True

    @property
    def url(self) -> str:
        hosts = ",".join(f"{self.service}:{node.port}" for node in self.nodes)
        return (
            f"postgresql://{PG_USER}:{PG_PASSWORD}@{hosts}/{DATABASE}"
            "?target_session_attrs=read-write&connect_timeout=3"
        )

    def node_url(self, node: PgNode, database: str = DATABASE) -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@{self.service}:{node.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args) if self.user is None else ["runuser", "-u", self.user, "--", *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")
        return done

    def start(self, node: PgNode) -> None:
        options = (
            f"-c listen_addresses={self.service} -c port={node.port}"
            f" -c unix_socket_directories={self.root}"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(node.datadir),
            "-l",
            str(node.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def postmaster_pid(self, node: PgNode) -> int | None:
        pidfile = node.datadir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_primary(self) -> PgNode:
        """SIGKILL the primary's postmaster and its backends, as a host losing power."""
        node = self.nodes[self.primary]
        pid = self.postmaster_pid(node)
        if pid is not None:
            children = [
                int(stat.parent.name)
                for stat in Path("/proc").glob("[0-9]*/stat")
                if _parent(stat) == pid
            ]
            for victim in [pid, *children]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), 20, "the old primary to die")
        self.standby_up = False
        return node

    def promote(self) -> PgNode:
        """Promote the standby (the failover manager's step), and let the new primary
        commit without a synchronous standby until one is rebuilt (as Patroni's
        non-strict synchronous mode does)."""
        new = 1 - self.primary
        node = self.nodes[new]
        self._run(str(self.bin / "pg_ctl"), "-D", str(node.datadir), "-w", "-t", "60", "promote")
        self.primary = new
        with psycopg.connect(self.node_url(node), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")
        return node

    def rebuild_standby(self) -> None:
        """A new standby in the dead node's place, from the new primary, then synchronous."""
        primary = self.nodes[self.primary]
        node = self.nodes[1 - self.primary]
        shutil.rmtree(node.datadir, ignore_errors=True)
        self._basebackup(primary, node)
        self.start(node)

        def streaming() -> bool:
            with psycopg.connect(self.node_url(primary), autocommit=True) as conn:
                rows = conn.execute("SELECT state FROM pg_stat_replication").fetchall()
            return any(row[0] == "streaming" for row in rows)

        wait_for(streaming, 60, "the rebuilt standby to stream")
        with psycopg.connect(self.node_url(primary), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            conn.execute("SELECT pg_reload_conf()")
        wait_for(lambda: self.sync_state() == "sync", 30, "the rebuilt standby to be synchronous")
        self.standby_up = True

    def _basebackup(self, source: PgNode, target: PgNode) -> None:
        conninfo = f"host={self.service} port={source.port} user={PG_USER} password={PG_PASSWORD}"
        self._run(
            str(self.bin / "pg_basebackup"),
            "-d",
            conninfo,
            "-D",
            str(target.datadir),
            "-R",
            "-X",
            "stream",
            "--no-sync",
            "-c",
            "fast",
        )

    def sync_state(self) -> str:
        primary = self.nodes[self.primary]
        with psycopg.connect(self.node_url(primary), autocommit=True) as conn:
            rows = conn.execute("SELECT sync_state FROM pg_stat_replication").fetchall()
        return ",".join(str(row[0]) for row in rows) or "none"

    def close(self) -> None:
        for node in self.nodes:
            if node.datadir.exists():
                self._run(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(node.datadir),
                    "-m",
                    "immediate",
                    "stop",
                    check=False,
                )


def _parent(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_pg_pair(root: Path, service: str, networks: list[str]) -> PgPair:
    """initdb the primary (as ``postgres`` when root), make a database, base-back-up a
    synchronous standby from it and start both."""
    # The folder with initdb may hold links to a few tools only: take the real one.
    binaries = (server_bin() / "initdb").resolve().parent
    user = "postgres" if os.geteuid() == 0 else None
    root.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    nodes = [PgNode(free_port(service), root / f"node{i}", root / f"node{i}.log") for i in range(2)]
    pair = PgPair(service, root, binaries, user, nodes)
    password = root / "password"
    password.write_text(PG_PASSWORD + "\n")
    if user is not None:
        os.chown(password, entry.pw_uid, entry.pw_gid)
    primary = nodes[0]
    pair._run(
        str(binaries / "initdb"),
        "-D",
        str(primary.datadir),
        "-U",
        PG_USER,
        "--pwfile",
        str(password),
        "-A",
        "scram-sha-256",
        "-E",
        "UTF8",
        "--locale",
        "C.UTF-8",
        "--no-sync",
    )
    allowed = [f"{service}/32", *networks]
    with (primary.datadir / "pg_hba.conf").open("a") as hba:
        for network in allowed:
            hba.write(f"host all all {network} scram-sha-256\n")
            hba.write(f"host replication {PG_USER} {network} scram-sha-256\n")
    with (primary.datadir / "postgresql.conf").open("a") as conf:
        # Durability against a killed process, not against the machine losing power (the
        # page cache survives a SIGKILL): fsync off keeps the shared disk quiet.
        conf.write(
            "fsync = off\nfull_page_writes = off\nsynchronous_commit = on\n"
            "wal_level = replica\nmax_wal_senders = 8\nwal_keep_size = '256MB'\n"
            "hot_standby = on\nmax_connections = 120\nshared_buffers = '32MB'\n"
            "wal_receiver_status_interval = '1s'\n"
        )
    (primary.datadir / "postgresql.auto.conf").write_text("synchronous_standby_names = '*'\n")
    if user is not None:
        shutil.chown(primary.datadir / "postgresql.auto.conf", user, user)
    pair.start(primary)
    with psycopg.connect(pair.node_url(primary, "postgres"), autocommit=True) as conn:
        # No standby yet: the database is made before synchronous commit has anyone to wait for.
        conn.execute("SET synchronous_commit = local")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    pair._basebackup(primary, nodes[1])
    pair.start(nodes[1])
    wait_for(lambda: pair.sync_state() == "sync", 60, "the standby to stream synchronously")
    from shared.store import open_url

    open_url(pair.url).close()  # migrate, through the multi-host URL
    return pair


# -- Worker hosts and notifiers ----------------------------------------------------------------


@dataclass
class Host:
    """``jobordre worker`` on one host: its own home (a small tmpfs where mounts work)."""

    link: HostLink
    dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    tmpfs: bool = False
    starts: int = 0

    @property
    def home(self) -> Path:
        return self.dir / "home"

    @property
    def log(self) -> Path:
        """The worker's log, in its home: a full home is a full log disk too."""
        return self.home / "worker.log"

    def prepare(self, tmpfs_mb: int) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            done = subprocess.run(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    f"size={tmpfs_mb}m,mode=0700",
                    "tmpfs",
                    str(self.home),
                ],
                capture_output=True,
                check=False,
                timeout=10,
            )
            self.tmpfs = done.returncode == 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.link.command(str(JOBORDRE), "worker", "--processes", "1", "--threads", "4"),
                env={**self.env, "JOBORDRE_HOME": str(self.home)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def started(self) -> bool:
        return self.log.read_bytes().count(b"worker started") >= self.starts

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> set[int]:
        """Every process of the host's group (the worker and its processes)."""
        if self.process is None:
            return set()
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid:
                found.add(int(stat.parent.name))
        return found

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        if self.alive():
            self.signal(signal.SIGKILL)
            assert self.process is not None
            self.process.wait(10)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(40)
        except subprocess.TimeoutExpired:
            self.kill()

    def close(self) -> None:
        self.stop()
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.home)], capture_output=True, check=False)


@dataclass
class Notifier:
    principal: str
    caseworker: str
    dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def out(self) -> Path:
        return self.dir / "notifier.out"

    @property
    def err(self) -> Path:
        return self.dir / "notifier.err"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.out.open("ab") as out, self.err.open("ab") as err:
            self.process = subprocess.Popen(
                [
                    str(JOBORDRE),
                    "notifier",
                    "--caseworker",
                    self.caseworker,
                    "--as",
                    self.principal,
                    "--terminal",
                    "-v",
                ],
                env={**self.env, "JOBORDRE_HOME": str(self.dir)},
                stdout=out,
                stderr=err,
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
