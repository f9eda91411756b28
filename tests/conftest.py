"""Shared fixtures: a real redis-server on a free loopback port, real worker processes.

The integration tier never touches anyone's port 6379: it starts its own ``redis-server``
and its own ``jobordre worker`` processes on a fresh SQLite file, and drives the CLI as a
user would, through the installed ``jobordre`` program.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
#: The installed console script, next to the interpreter running the tests.
JOBORDRE = Path(sys.executable).parent / "jobordre"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


@dataclass
class RedisServer:
    """A private redis-server process."""

    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    #: How clients reach it, when not plain ``redis://`` (a password, TLS).
    custom_url: str | None = None

    @property
    def url(self) -> str:
        return self.custom_url or f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_redis(
    workdir: Path,
    port: int | None = None,
    *,
    persistent: bool = False,
    extra_args: tuple[str, ...] = (),
    url: str | None = None,
) -> RedisServer:
    """Start ``redis-server`` on a free loopback port (or ``port``) and wait until it answers.

    ``persistent`` turns on the append-only file, fsynced on every write, as production
    should run it: queues then survive a restart.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: install it (Debian/Ubuntu: apt-get install "
            "redis-server); the README's test command does this for you"
        )
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if persistent else "no",
            "--appendfsync",
            "always",
            "--dir",
            str(workdir),
            "--logfile",
            str(workdir / "redis.log"),
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, process, workdir, url.format(port=port) if url else None)

    def answers() -> bool:
        try:
            return bool(server.client().ping())
        except redis.ConnectionError:
            return False

    wait_until(answers, 10, f"redis-server on port {port}")
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server for the whole test session."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@dataclass
class System:
    """A running jobordre: Redis, a SQLite file and worker processes, plus a CLI to drive it."""

    redis: RedisServer
    home: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: A PostgreSQL store instead of the SQLite file (``JOBORDRE_DATABASE_URL``).
    database_url: str | None = None

    @property
    def db(self) -> Path:
        return self.home / "jobordre.db"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
        env.update(
            JOBORDRE_HOME=str(self.home),
            JOBORDRE_DB=str(self.db),
            JOBORDRE_REDIS_URL=self.redis.url,
            JOBORDRE_REPLY_TIMEOUT_MS="20000",
            JOBORDRE_MIN_BACKOFF_MS="50",
            JOBORDRE_MAX_BACKOFF_MS="500",
        )
        if self.database_url:
            env["JOBORDRE_DATABASE_URL"] = self.database_url
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Any:
        """Settings of an in-test client of this system (what ``env()`` gives the CLI)."""
        from shared.settings import Settings

        env = self.env()
        return Settings(
            home=Path(env["JOBORDRE_HOME"]),
            db=Path(env["JOBORDRE_DB"]),
            redis_url=env["JOBORDRE_REDIS_URL"],
            **overrides,
        )

    def start_worker(
        self, processes: int = 1, threads: int = 4, **extra: str
    ) -> subprocess.Popen[bytes]:
        log_path = self.home / f"worker-{len(self.workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(JOBORDRE), "worker", "--processes", str(processes), "--threads", str(threads)],
                env=self.env(**extra),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(process)
        # This worker's own log, and every one of its processes.
        wait_until(
            lambda: (
                process.poll() is not None
                or log_path.read_bytes().count(b"worker started") >= processes
            ),
            30,
            "the worker to start",
        )
        assert process.poll() is None, self.worker_logs().decode(errors="replace")
        return process

    def worker_logs(self) -> bytes:
        return b"".join(path.read_bytes() for path in sorted(self.home.glob("worker-*.log")))

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.workers.clear()

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Run one statement on the system's store, whichever engine, as an operator would."""
        from shared.store import open_url

        store = open_url(self.database_url or self.db, migrate=False)
        try:
            with store.write() as tx:
                cursor = tx.execute(statement, params)
                return (
                    list(cursor.fetchall())
                    if statement.lstrip().upper().startswith("SELECT")
                    else []
                )
        finally:
            store.close()

    def cli(self, *args: str, stdin: str | None = None, **extra: str) -> CliResult:
        """Run ``jobordre ARGS`` as a user would; returns exit code, stdout and stderr."""
        done = subprocess.run(
            [str(JOBORDRE), *args],
            env=self.env(**extra),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def notify_key(self, principal: str, caseworker: str, path: Path) -> dict[str, Any]:
        """Make a key of scope ``notify`` for ``caseworker`` at ``path`` (the operator's
        ``jobordre keys create --scope notify``); returns what the command printed."""
        return self.json(
            "keys", "create", principal, "--scope", "notify", "--caseworker", caseworker,
            "--out", str(path),
        )  # fmt: skip

    def json(self, *args: str, stdin: str | None = None, expect: int = 0) -> dict[str, Any]:
        """Run a command with ``--json`` and return its one JSON document."""
        result = self.cli(*args, "--json", stdin=stdin)
        assert result.code == expect, f"exit {result.code}: {result.out}{result.err}"
        document: dict[str, Any] = json.loads(result.out)
        return document


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def system(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A fresh store and one worker process (4 threads) on the session's redis-server."""
    redis_server.client().flushall()
    running = System(redis_server, tmp_path_factory.mktemp("home"))
    running.start_worker()
    yield running
    running.stop_workers()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, for tests that kill or restart things."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def bare_system(private_redis: RedisServer, tmp_path: Path) -> Iterator[System]:
    """A fresh store on a redis-server of its own and no worker: the test starts its own."""
    home = tmp_path / "home"
    home.mkdir()
    running = System(private_redis, home)
    yield running
    running.stop_workers()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """One private PostgreSQL cluster for the whole session, on a free loopback port."""
    from tests.postgres_cluster import start_cluster

    cluster = start_cluster(free_port())
    yield cluster
    cluster.stop()


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store of each engine lives: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    cluster = request.getfixturevalue("postgres_cluster")
    return str(cluster.fresh_database())


@pytest.fixture
def any_store(store_url: str) -> Iterator[Any]:
    """A migrated, empty store of each engine (see :func:`store_url`)."""
    from shared.store import open_url

    opened = open_url(store_url)
    yield opened
    opened.close()
