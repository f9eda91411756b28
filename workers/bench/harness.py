"""``jobordre bench``: every figure of issue 7 in one run, each against a baseline.

One run starts a private ``redis-server`` on a free loopback port and a fresh SQLite file
in a temporary folder, bulk-loads N generated orders (as ``jobordre demo`` does: the search
index ends as one FTS5 segment), and then measures, in this order:

1. search latency in-process on the store (jobordre's :func:`shared.search.search_orders`)
   and the same SQL run directly through ``sqlite3`` without jobordre's Python (baseline);
2. the no-op Dramatiq baseline: the same Redis, the same broker middleware and the same
   processes × threads serving an actor that does nothing;
3. placements, order status changes and order updates end to end through real
   ``jobordre worker`` processes: enqueued by a :class:`~workers.client.Client`, many in
   flight, timed until the last reply is back with the caller;
4. the round trip of one search job on an idle system, and change → event header on the
   Redis stream (the inbox's and notifier's wake-up);
5. fair share: another organisation's ``get_order`` round trip, alone and while one
   jobcentre's burst of cheap searches is queued (the baseline is the same call alone);
6. the workers' peak resident memory.

Speed is never asserted: the benchmark reports, the reader judges (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import dramatiq
import psycopg
import redis

from shared import search
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.errors import JobordreError, Unavailable
from shared.foundation import Foundation
from shared.keys import create, valid_keys
from shared.settings import Settings
from shared.signing_v2 import VERSION as PROTOCOL_2
from shared.signing_v2 import OrganisationKey
from shared.store import SqliteStore, open_store, open_url, postgres_search, sqlite_search
from shared.store.copy import copy_store
from shared.store.postgres import PostgresStore
from workers.bench.generator import Generator, load_orders
from workers.bench.noop import NOOP_ACTOR, NOOP_QUEUE
from workers.bench.signatures import measure_signatures
from workers.client import Client
from workers.client.credentials import create_v2_key
from workers.transport.broker import build_broker
from workers.transport.dramatiq_redis import NAMESPACE, messages_key
from workers.transport.redis_connection import connect_redis

#: The organisation the benchmark acts as: an authority, so it may place and update.
PRINCIPAL = "jobcentre:101"
#: How long to wait for redis-server or the workers to come up, in seconds.
START_TIMEOUT_S = 60.0
#: How long the benchmark waits for any single reply, in milliseconds.
REPLY_TIMEOUT_MS = 120_000
#: Pause between two idle round trips, in seconds: long enough for the worker to go idle.
IDLE_PAUSE_S = 0.05
#: How often the baseline checks whether its queue has drained, in seconds.
DRAIN_POLL_S = 0.005


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run does; the defaults suit a laptop (a few minutes)."""

    #: Orders loaded for the search figures (use 1,000,000 for the issue's target).
    orders: int = 20_000
    #: Worker processes, for the baseline and the real workers alike.
    processes: int = 2
    #: Threads per worker process.
    threads: int = 8
    #: Commands per measured write kind (placements, status changes, updates).
    messages: int = 2_000
    #: Messages for the no-op baseline.
    baseline_messages: int = 10_000
    #: Search queries timed in-process (jobordre and the direct SQL baseline each).
    queries: int = 500
    #: Round trips of one search job on an idle system; also change → event samples.
    roundtrips: int = 100
    #: Cheap searches one organisation sends at once for the fair-share figure.
    burst: int = 2_000
    #: An empty PostgreSQL database to measure instead of SQLite (the generated store is
    #: copied into it); None = SQLite.
    database_url: str | None = None
    #: With ``database_url``: also measure the writes through a TCP proxy that delays each
    #: direction by this many milliseconds (:mod:`workers.bench.latency`), with all the
    #: worker processes and with one; None = not.
    db_latency_ms: float | None = None
    #: Seed of the generated data and queries.
    seed: int = 7
    #: Show progress on stderr.
    progress: bool = True
    #: The protocol the write phases' client speaks (docs/protocol.md; 2: § 14).
    protocol: int = 1


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def _ms(seconds: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(seconds, 0.50) * 1000, 3),
        "p95": round(percentile(seconds, 0.95) * 1000, 3),
        "p99": round(percentile(seconds, 0.99) * 1000, 3),
    }


def _say(config: BenchConfig, message: str) -> None:
    if config.progress:
        print(f"bench: {message}", file=sys.stderr, flush=True)


# --- processes -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not check():
        if process.poll() is not None:
            raise Unavailable(f"{what} exited with code {process.returncode} while starting")
        if time.monotonic() > deadline:
            raise Unavailable(f"{what} did not start within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.02)


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port, without persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise Unavailable(
            "jobordre bench needs redis-server, which is not installed: install it "
            "(Debian/Ubuntu: apt-get install redis-server) and run the benchmark again"
        )
    port = _free_port()
    process = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(workdir), "--logfile", str(workdir / "redis.log")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            return bool(connect_redis(url, socket_connect_timeout=1).ping())
        except redis.ConnectionError:
            return False

    try:
        _wait_until(answers, "redis-server", process)
        yield url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JOBORDRE_HOME=str(settings.home),
        JOBORDRE_DB=str(settings.db_path),
        JOBORDRE_REDIS_URL=str(settings.redis_url),
    )
    if settings.database_url:
        env["JOBORDRE_DATABASE_URL"] = settings.database_url
    return env


@contextlib.contextmanager
def _serving(
    argv: list[str], settings: Settings, log: Path, ready: bytes, count: int, what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a worker command until the block ends; wait for ``count`` ``ready`` log lines."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=_environment(settings), stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        _wait_until(lambda: log.read_bytes().count(ready) >= count, what, process)
        yield process
    finally:
        _stop(process)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text().split():
                found += _descendants(int(child))
    return found


def peak_rss_mb(pid: int) -> float:
    """The largest peak resident set (VmHWM) among ``pid`` and its descendants, in MB."""
    peak = 0.0
    for each in _descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return round(peak, 1)


# --- the measurements ----------------------------------------------------------------------


#: One timed search: the text and its filters.
Query = tuple[str, dict[str, str]]


def _search_queries(config: BenchConfig) -> list[Query]:
    """What a caseworker searches for: generated words in a municipality, open orders."""
    generator = Generator(config.seed + 1)
    return [
        (
            generator.search_text(),
            {"municipality": generator.municipality(), "status": "processing"},
        )
        for _ in range(config.queries)
    ]


def _search_figures(
    ours: list[float], baseline: list[float], totals: list[int], queries: list[Query]
) -> dict[str, Any]:
    return {
        "ours": _ms(ours),
        "baseline": _ms(baseline),
        "median_total": statistics.median(totals),
        "examples": [{"text": t, **f} for t, f in queries[:3]],
    }


def measure_search(db: Path, config: BenchConfig) -> dict[str, Any]:
    """Search latency through jobordre and the same SQL directly on SQLite."""
    queries = _search_queries(config)
    store = SqliteStore(db)
    conn = store.connection()
    direct = sqlite3.connect(db)
    try:
        for text, filters in queries[:50]:  # warm the page cache for both alike
            search.search_orders(conn, text=text, filters=filters, limit=20, offset=0)
        ours: list[float] = []
        baseline: list[float] = []
        totals: list[int] = []
        for text, filters in queries:
            match = sqlite_search.match_expression(search.words(text), filters)
            started = time.perf_counter()
            conn.execute("BEGIN")
            total, _page = search.search_orders(
                conn, text=text, filters=filters, limit=20, offset=0
            )
            conn.execute("COMMIT")
            ours.append(time.perf_counter() - started)
            totals.append(total)
            started = time.perf_counter()
            scored = direct.execute(
                sqlite_search.TEXT_WINDOW_SQL,
                {"match": match, "window": sqlite_search.RANK_WINDOW},
            ).fetchall()
            if len(scored) >= sqlite_search.RANK_WINDOW:
                direct.execute(
                    sqlite_search.TEXT_COUNT_SQL, {"match": match, "after": -scored[-1][0]}
                ).fetchone()
            ids = [row[0] for row in sorted(scored, key=lambda row: (row[1], -row[0]))[:20]]
            marks = ",".join("?" * len(ids))
            direct.execute(f"SELECT doc FROM orders WHERE id IN ({marks})", ids).fetchall()  # noqa: S608
            baseline.append(time.perf_counter() - started)
    finally:
        direct.close()
        store.close()
    return _search_figures(ours, baseline, totals, queries)


def _copy_to(db: Path, url: str) -> None:
    source, target = SqliteStore(db), open_url(url)
    try:
        copy_store(source, target)
    finally:
        source.close()
        target.close()


def measure_search_postgres(url: str, config: BenchConfig) -> dict[str, Any]:
    """Search latency on PostgreSQL: jobordre's search, and its SQL sent directly."""
    queries = _search_queries(config)
    store = open_url(url)
    direct = psycopg.connect(url, autocommit=True)
    try:
        for text, filters in queries[:50]:  # warm the buffer cache for both alike
            with store.read() as tx:
                search.search_orders(tx, text=text, filters=filters, limit=20, offset=0)
        ours: list[float] = []
        baseline: list[float] = []
        totals: list[int] = []
        for text, filters in queries:
            started = time.perf_counter()
            with store.read() as tx:
                total, _page = search.search_orders(
                    tx, text=text, filters=filters, limit=20, offset=0
                )
            ours.append(time.perf_counter() - started)
            totals.append(total)
            started = time.perf_counter()
            with direct.transaction():
                _total, ids = postgres_search.search_ids(
                    direct, words=search.words(text), filters=filters, limit=20, offset=0
                )
                direct.execute("SELECT doc FROM orders WHERE id = ANY(%s)", (ids,)).fetchall()
            baseline.append(time.perf_counter() - started)
    finally:
        direct.close()
        store.close()
    return _search_figures(ours, baseline, totals, queries)


def measure_baseline(settings: Settings, config: BenchConfig, workdir: Path) -> float:
    """No-op actor throughput (messages/s) on the same Redis, processes and threads."""
    argv = [sys.executable, "-m", "workers.bench.noop", str(settings.redis_url)]
    argv += [str(config.processes), str(config.threads)]
    log = workdir / "noop.log"
    client = connect_redis(str(settings.redis_url))
    broker = build_broker(settings, str(settings.redis_url))
    pending = messages_key(NAMESPACE, NOOP_QUEUE)
    try:
        with _serving(argv, settings, log, b"noop worker started", config.processes, "noop"):

            def send(count: int) -> None:
                for index in range(count):
                    broker.enqueue(
                        dramatiq.Message(
                            queue_name=NOOP_QUEUE,
                            actor_name=NOOP_ACTOR,
                            args=(index,),
                            kwargs={},
                            options={},
                        )
                    )

            def drained() -> None:
                while client.hlen(pending):
                    time.sleep(DRAIN_POLL_S)

            send(100)  # warm-up: connections made, workers polling
            drained()
            started = time.perf_counter()
            send(config.baseline_messages)
            drained()
            return config.baseline_messages / (time.perf_counter() - started)
    finally:
        broker.close()
        client.close()


def _open_orders(settings: Settings, count: int, skip: int) -> list[tuple[int, int]]:
    """(id, version) of ``count`` orders being processed, after the first ``skip`` ids."""
    store = open_store(settings)
    try:
        rows = (
            store.connection()
            .execute(
                "SELECT id, version FROM orders WHERE status = 'processing' AND id > ?"
                " ORDER BY id LIMIT ?",
                (skip, count),
            )
            .fetchall()
        )
    finally:
        store.close()
    return [(int(row[0]), int(row[1])) for row in rows]


def throughput(client: Client, kind: CommandKind, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Send every payload (one thread) while waiting for the replies (another); per second.

    Timed from the first send to the last reply received: enqueue → result with the caller.
    The waiting thread takes the replies with :meth:`Client.wait_many`, for every command
    sent so far at once.
    """
    ids: list[str] = []
    ready = threading.Condition()
    failures: list[str] = []

    def sender() -> None:
        for payload in payloads:
            command_id = client.send(kind, payload)
            with ready:
                ids.append(command_id)
                ready.notify()

    started = time.perf_counter()
    thread = threading.Thread(target=sender, name="bench-sender")
    thread.start()
    waited = 0
    while waited < len(payloads):
        with ready:
            ready.wait_for(lambda: len(ids) > waited)  # noqa: B023 - used at once
            sent = ids[waited:]
        # Everything sent so far at once, as a system with many commands in flight would.
        for _, outcome in client.wait_many(sent, REPLY_TIMEOUT_MS):
            if isinstance(outcome, JobordreError):
                failures.append(outcome.code)
        waited += len(sent)
    elapsed = time.perf_counter() - started
    thread.join()
    return {"per_s": round(len(payloads) / elapsed, 1), "errors": len(failures)}


def measure_writes(
    settings: Settings,
    config: BenchConfig,
    workdir: Path,
    *,
    after_id: int = 0,
    writes_only: bool = False,
    exchanges: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Placements, status changes and updates end to end on orders with ids above
    ``after_id``, with the workers' CPU time and the machine's (and the round trips per
    command, with a latency proxy's ``exchanges``); unless ``writes_only``, the idle round
    trip, events and RSS too."""
    argv = [sys.executable, "-c", "from workers.cli import main; main()", "worker"]
    argv += ["--processes", str(config.processes), "--threads", str(config.threads)]
    count = config.messages
    targets = _open_orders(settings, 3 * count, after_id)
    if len(targets) < 3 * count:
        raise Unavailable(
            f"the benchmark needs {3 * count} open orders and found {len(targets)}: "
            "raise --orders or lower --messages"
        )
    generator = Generator(config.seed + 2)
    placements = [generator.placement(order_id) for order_id, _ in targets[:count]]
    statuses = [
        {"order_id": order_id, "status": "inactivated"}
        for order_id, _ in targets[count : 2 * count]
    ]
    updates = [
        {"order_id": order_id, "expected_version": version, "patch": {"positions": 3}}
        for order_id, version in targets[2 * count :]
    ]
    figures: dict[str, Any] = {"last_id": targets[-1][0]}
    with _serving(
        argv, settings, workdir / "worker.log", b"worker started", config.processes, "workers"
    ) as process:
        client = Client(
            settings, PRINCIPAL, url=str(settings.redis_url), key=_key(settings, config)
        )
        try:
            # Warm-up: every worker thread opens its SQLite connection and prepares.
            throughput(client, CommandKind.GET_ORDER, [{"order_id": 1}] * 200)
            for name, kind, payloads in (
                ("placements", CommandKind.REGISTER_PLACEMENT, placements),
                ("status_changes", CommandKind.CHANGE_ORDER_STATUS, statuses),
                ("updates", CommandKind.UPDATE_ORDER, updates),
            ):
                _say(config, f"{len(payloads)} {name} end to end")
                before = exchanges() if exchanges else 0
                workers_cpu, machine_cpu = cpu_seconds(process.pid), machine_busy()
                figures[name] = throughput(client, kind, payloads)
                if exchanges:
                    figures[name]["roundtrips_per_command"] = round(
                        (exchanges() - before) / len(payloads), 2
                    )
                figures[name]["workers_cpu_ms_per_command"] = round(
                    (cpu_seconds(process.pid) - workers_cpu) * 1000 / len(payloads), 3
                )
                figures[name]["machine_busy"] = machine_busy_since(machine_cpu)
            if writes_only:
                return figures
            _say(config, f"{config.roundtrips} idle search round trips")
            figures["roundtrip"] = roundtrips(client, config)
            _say(config, f"{config.roundtrips} change → event latencies")
            figures["events"] = event_latencies(client, settings, config, targets[:count])
            _say(config, f"another organisation's get_order behind {config.burst} searches")
            figures["fairness"] = fairness(client, settings, config)
            figures["worker_rss_mb"] = peak_rss_mb(process.pid)
        finally:
            client.close()
    return figures


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) used so far by ``pid`` and every process below it."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in _descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def machine_busy() -> tuple[int, int]:
    """The machine's (busy, total) CPU ticks so far, from ``/proc/stat``."""
    values = [int(part) for part in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def machine_busy_since(before: tuple[int, int]) -> float:
    """The fraction of the machine's CPU time that was busy since ``before`` (all cores)."""
    busy, total = machine_busy()
    return round((busy - before[0]) / max(1, total - before[1]), 3)


@contextlib.contextmanager
def latency_proxy(url: str, delay_ms: float, workdir: Path) -> Iterator[tuple[str, Path]]:
    """The URL of ``url``'s database through a proxy delaying each direction by
    ``delay_ms`` (:mod:`workers.bench.latency`), and the proxy's stats file."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    port = _free_port()
    stats = workdir / "latency.json"
    log = workdir / "latency.log"
    argv = [sys.executable, "-m", "workers.bench.latency", str(port)]
    argv += [str(info.get("host", "127.0.0.1")), str(info.get("port", 5432)), str(delay_ms)]
    with log.open("wb") as sink:
        process = subprocess.Popen([*argv, str(stats)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_until(lambda: b"ready" in log.read_bytes(), "the latency proxy", process)
        parts = urllib.parse.urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
        yield urllib.parse.urlunsplit(parts._replace(netloc=netloc)), stats
    finally:
        _stop(process)


def proxy_exchanges(stats: Path) -> int:
    """The client exchanges the proxy counted so far (after its next stats write): a
    phase's difference, per command, is the round trips a command costs."""
    time.sleep(0.2)
    return int(json.loads(stats.read_text())["exchanges"])


def database_roundtrip(url: str, count: int = 50) -> dict[str, float]:
    """``SELECT 1`` round trips on one connection to ``url``, in ms."""
    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(count):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            samples.append(time.perf_counter() - started)
    return _ms(samples)


def measure_latency(
    settings: Settings, config: BenchConfig, workdir: Path, after_id: int
) -> dict[str, Any]:
    """The writes through the latency proxy: every worker process, then one (hosts); the
    round trips they cost per command, counted by the proxy."""
    assert config.database_url is not None
    assert config.db_latency_ms is not None
    figures: dict[str, Any] = {}
    with latency_proxy(config.database_url, config.db_latency_ms, workdir) as (url, stats):
        figures["db_roundtrip_ms"] = database_roundtrip(url)
        proxied = settings.model_copy(update={"database_url": url})
        for hosts in sorted({config.processes, 1}, reverse=True):
            _say(config, f"writes through the latency proxy, {hosts} worker process(es)")
            run = measure_writes(
                proxied,
                dataclasses.replace(config, processes=hosts),
                workdir,
                after_id=after_id,
                writes_only=True,
                exchanges=partial(proxy_exchanges, stats),
            )
            after_id = run.pop("last_id")
            figures[f"hosts_{hosts}"] = run
    return figures


#: Commands of one transaction when the numbering lock is timed (a worker's batch under load).
NUMBERING_BATCH = 16


def measure_numbering(url: str, config: BenchConfig, after_id: int) -> dict[str, Any]:
    """How long the one lock writers of all hosts share (the event numbering, taken just
    before COMMIT) is held: status changes applied in-process in transactions of
    :data:`NUMBERING_BATCH`, each transaction's last message timed from its send to
    COMMIT's answer (an upper bound: one round trip on the loopback more)."""
    store = open_url(url)
    assert isinstance(store, PostgresStore)
    try:
        foundation = Foundation(store, max_batch=NUMBERING_BATCH)
        with store.write() as tx:
            known = valid_keys(tx, PRINCIPAL)
            key = next(iter(known.values())) if known else create(tx, PRINCIPAL, utc_now())
        rows = (
            store.connection()
            .execute(
                "SELECT id FROM orders WHERE status = 'processing' AND id > ? ORDER BY id LIMIT ?",
                (after_id, config.messages),
            )
            .fetchall()
        )
        envelopes = [
            new_envelope(
                CommandKind.CHANGE_ORDER_STATUS,
                PRINCIPAL,
                {"order_id": int(row[0]), "status": "inactivated"},
                key=key,
            )
            for row in rows
        ]
        store.numbering.clear()
        for start in range(0, len(envelopes), NUMBERING_BATCH):
            foundation.answer_writes(envelopes[start : start + NUMBERING_BATCH])
        held = [seconds for seconds, _ in store.numbering]
        per_event = [seconds / count for seconds, count in store.numbering]
    finally:
        store.close()
    return {
        "commands_per_transaction": NUMBERING_BATCH,
        "per_transaction": _ms(held),
        "per_command": _ms(per_event),
        "last_id": int(rows[-1][0]) if rows else after_id,
    }


def _key(settings: Settings, config: BenchConfig) -> OrganisationKey | None:
    """A protocol 2 key for the write phases' client, or None (protocol 1, as provisioned)."""
    if config.protocol != PROTOCOL_2:
        return None
    store = open_store(settings)
    try:
        return create_v2_key(store, settings, PRINCIPAL)
    finally:
        store.close()


def roundtrips(client: Client, config: BenchConfig) -> dict[str, float]:
    """One search job at a time on an idle system: client enqueues → result back."""
    generator = Generator(config.seed + 3)
    samples = []
    for _ in range(config.roundtrips):
        payload = {
            "text": generator.search_text(),
            "municipality": generator.municipality(),
            "status": "processing",
        }
        time.sleep(IDLE_PAUSE_S)
        started = time.perf_counter()
        client.call(CommandKind.SEARCH_ORDERS, payload, timeout_ms=REPLY_TIMEOUT_MS)
        samples.append(time.perf_counter() - started)
    return _ms(samples)


#: The organisation whose queries the fair-share figure times beside the burst.
OTHER_PRINCIPAL = "akasse:3f"


def fairness(client: Client, settings: Settings, config: BenchConfig) -> dict[str, Any]:
    """Another organisation's ``get_order`` round trip: alone (``roundtrips`` calls on an
    idle system), then one call after another while ``burst`` cheap searches of
    :data:`PRINCIPAL`, all sent at once, are served (until the last of them is answered).

    The searches filter by an index only (no text, one result): each is cheap, so what
    the other organisation waits for is its turn, not a slow query.
    """
    other = Client(settings, OTHER_PRINCIPAL, url=str(settings.redis_url))
    try:
        payload = {"order_id": 1}
        other.call(CommandKind.GET_ORDER, payload, timeout_ms=REPLY_TIMEOUT_MS)  # its key
        alone = []
        for _ in range(config.roundtrips):
            time.sleep(IDLE_PAUSE_S)
            started = time.perf_counter()
            other.call(CommandKind.GET_ORDER, payload, timeout_ms=REPLY_TIMEOUT_MS)
            alone.append(time.perf_counter() - started)
        cheap = {"municipality": "101", "status": "processing", "limit": 1}
        # On the queue at once, as a client that sends its batch in one round trip does.
        sent = client.send_many(CommandKind.SEARCH_ORDERS, [cheap] * config.burst)
        burst_started = time.perf_counter()
        done = threading.Event()

        def drain() -> None:
            for _ in client.wait_many(sent, REPLY_TIMEOUT_MS):
                pass
            done.set()

        waiter = threading.Thread(target=drain, name="bench-burst")
        waiter.start()
        behind = []
        while True:  # the first call is sent right behind the whole burst
            started = time.perf_counter()
            other.call(CommandKind.GET_ORDER, payload, timeout_ms=REPLY_TIMEOUT_MS)
            behind.append(time.perf_counter() - started)
            if done.is_set():
                break
        waiter.join()
        drained_s = time.perf_counter() - burst_started
    finally:
        other.close()
    return {
        "alone": _ms(alone),
        "behind_burst": _ms(behind),
        "behind_samples": len(behind),
        "burst": config.burst,
        "burst_drained_s": round(drained_s, 3),
    }


def event_latencies(
    client: Client, settings: Settings, config: BenchConfig, orders: list[tuple[int, int]]
) -> dict[str, float] | None:
    """Change (command sent) → its event header on the Redis stream, on an idle system.

    The stream is what ``jobordre inbox --follow`` and the notifier wake on; ``None`` if
    this jobordre has no event relay.
    """
    try:
        from workers.worker.relay import events_stream_key, latest_stream_id, read_headers
    except ImportError:
        return None
    key = events_stream_key(settings)
    samples = []
    # The placed orders are processing with a placement each; inactivate and reactivate.
    for index in range(min(config.roundtrips, len(orders))):
        order_id = orders[index][0]
        after = latest_stream_id(client.redis, key)
        time.sleep(IDLE_PAUSE_S)
        started = time.perf_counter()
        client.send(
            CommandKind.CHANGE_ORDER_STATUS, {"order_id": order_id, "status": "inactivated"}
        )
        deadline = started + REPLY_TIMEOUT_MS / 1000
        seen = False
        while not seen and time.perf_counter() < deadline:
            after, headers = read_headers(client.redis, key, after, block_ms=1_000)
            seen = any(header.order_id == order_id for header in headers)
        if seen:
            samples.append(time.perf_counter() - started)
    return _ms(samples) if samples else None


# --- the run -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Cores, CPU model and the versions that shape the figures."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for package in ("jobordre", "dramatiq", "redis", "pydantic", "sqlite-utils"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    binary = shutil.which("redis-server")
    if binary:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, check=False, timeout=10
            )
            versions["redis-server"] = next(
                (part[2:] for part in done.stdout.split() if part.startswith("v=")), "?"
            )
    return {"cores": os.cpu_count(), "cpu_model": model, "versions": versions}


def _ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 3) if baseline > 0 else 0.0


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run the whole benchmark; returns the JSON document ``jobordre bench --json`` prints."""
    with tempfile.TemporaryDirectory(prefix="jobordre-bench-") as folder:
        workdir = Path(folder)
        with private_redis(workdir) as url:
            settings = Settings(
                home=workdir,
                db=workdir / "bench.db",
                redis_url=url,
                database_url=config.database_url,
            )
            db = settings.db_path
            _say(config, f"loading {config.orders} generated orders into {db}")
            load_orders(db, config.orders, seed=config.seed, progress=config.progress)
            if config.database_url:
                _say(config, "copying them into the PostgreSQL database")
                _copy_to(db, config.database_url)
            _say(config, f"{config.queries} searches, jobordre and direct SQL")
            searched = (
                measure_search(db, config)
                if config.database_url is None
                else measure_search_postgres(config.database_url, config)
            )
            _say(config, "authentication cost per command, protocol 2 against 1")
            signatures = measure_signatures()
            _say(config, f"no-op baseline: {config.baseline_messages} messages")
            baseline = measure_baseline(settings, config, workdir)
            writes = measure_writes(settings, config, workdir)
            numbering = (
                measure_numbering(config.database_url, config, writes["last_id"])
                if config.database_url
                else None
            )
            latency = (
                measure_latency(settings, config, workdir, numbering["last_id"])
                if config.database_url and config.db_latency_ms and numbering
                else None
            )
    events = writes["events"]
    return {
        "store_engine": "postgres" if config.database_url else "sqlite",
        "protocol": config.protocol,
        "baseline_per_s": round(baseline, 1),
        "placements_per_s": writes["placements"]["per_s"],
        "placements_ratio": _ratio(writes["placements"]["per_s"], baseline),
        "status_changes_per_s": writes["status_changes"]["per_s"],
        "status_changes_ratio": _ratio(writes["status_changes"]["per_s"], baseline),
        "updates_per_s": writes["updates"]["per_s"],
        "updates_ratio": _ratio(writes["updates"]["per_s"], baseline),
        "write_errors": sum(
            writes[name]["errors"] for name in ("placements", "status_changes", "updates")
        ),
        "workers_cpu_ms_per_command": {
            name: writes[name]["workers_cpu_ms_per_command"] for name in WRITE_KINDS
        },
        "machine_busy": {name: writes[name]["machine_busy"] for name in WRITE_KINDS},
        **({"db_latency": _latency_figures(latency, writes)} if latency else {}),
        **(
            {"numbering_lock_ms": {k: v for k, v in numbering.items() if k != "last_id"}}
            if numbering
            else {}
        ),
        "search_p50_ms": searched["ours"]["p50"],
        "search_p95_ms": searched["ours"]["p95"],
        "search_p99_ms": searched["ours"]["p99"],
        "search_baseline_p50_ms": searched["baseline"]["p50"],
        "search_baseline_p95_ms": searched["baseline"]["p95"],
        "search_baseline_p99_ms": searched["baseline"]["p99"],
        "search_ratio_p95": _ratio(searched["ours"]["p95"], searched["baseline"]["p95"]),
        "search_median_total": searched["median_total"],
        "search_total": "exact",
        "search_examples": searched["examples"],
        "roundtrip_p50_ms": writes["roundtrip"]["p50"],
        "roundtrip_p95_ms": writes["roundtrip"]["p95"],
        "event_latency_p50_ms": events["p50"] if events else None,
        "event_latency_p95_ms": events["p95"] if events else None,
        "fair_get_order_alone_p95_ms": writes["fairness"]["alone"]["p95"],
        "fair_get_order_behind_burst_p50_ms": writes["fairness"]["behind_burst"]["p50"],
        "fair_get_order_behind_burst_p95_ms": writes["fairness"]["behind_burst"]["p95"],
        "fair_get_order_ratio_p95": _ratio(
            writes["fairness"]["behind_burst"]["p95"], writes["fairness"]["alone"]["p95"]
        ),
        "fair_burst": writes["fairness"]["burst"],
        "fair_burst_drained_s": writes["fairness"]["burst_drained_s"],
        "worker_rss_mb": writes["worker_rss_mb"],
        "signature_cost": signatures,
        **machine(),
        "parameters": asdict(config)
        | {
            "poll_ms": settings.worker_poll_ms,
            "group_commit_max_writes": settings.group_commit_max_writes,
        },
    }


#: The measured write kinds, as the figures name them.
WRITE_KINDS = ("placements", "status_changes", "updates")


def _latency_figures(latency: dict[str, Any], local: dict[str, Any]) -> dict[str, Any]:
    """The latency runs, each write kind also as a ratio of the same run's local figure."""
    out: dict[str, Any] = {"db_roundtrip_ms": latency["db_roundtrip_ms"]}
    for key, run in latency.items():
        if not key.startswith("hosts_"):
            continue
        out[key] = {}
        for name in WRITE_KINDS:
            out[key][name] = run[name] | {
                "ratio_to_local": _ratio(run[name]["per_s"], local[name]["per_s"])
            }
    return out


def human(figures: dict[str, Any]) -> str:
    """The figures as a short table for people."""
    rows = [
        ("no-op baseline", f"{figures['baseline_per_s']:.0f} msg/s", ""),
        (
            "placements",
            f"{figures['placements_per_s']:.0f} /s",
            f"{figures['placements_ratio']:.0%}",
        ),
        (
            "status changes",
            f"{figures['status_changes_per_s']:.0f} /s",
            f"{figures['status_changes_ratio']:.0%}",
        ),
        ("updates", f"{figures['updates_per_s']:.0f} /s", f"{figures['updates_ratio']:.0%}"),
        (
            "search p50/p95/p99",
            f"{figures['search_p50_ms']}/{figures['search_p95_ms']}/{figures['search_p99_ms']} ms",
            f"direct SQL p95 {figures['search_baseline_p95_ms']} ms",
        ),
        (
            "idle round trip p50/p95",
            f"{figures['roundtrip_p50_ms']}/{figures['roundtrip_p95_ms']} ms",
            "",
        ),
        (
            "change → event p50/p95",
            f"{figures['event_latency_p50_ms']}/{figures['event_latency_p95_ms']} ms",
            "",
        ),
        (
            "other org's get_order p95",
            f"{figures['fair_get_order_behind_burst_p95_ms']} ms behind "
            f"{figures['fair_burst']} searches",
            f"alone {figures['fair_get_order_alone_p95_ms']} ms",
        ),
        ("worker peak RSS", f"{figures['worker_rss_mb']} MB", ""),
        *(
            (
                f"v2/v1 auth ({name})",
                f"{cost['verify_open_v2_us']}/{cost['verify_open_v1_us']} µs",
                f"×{cost['verify_open_ratio']}; Ed25519/HMAC ×{cost['ed25519_over_hmac']}",
            )
            for name, cost in figures.get("signature_cost", {}).items()
        ),
    ]
    rows.insert(0, ("store engine", figures.get("store_engine", "sqlite"), ""))
    numbering = figures.get("numbering_lock_ms")
    if numbering:
        rows.append(
            (
                "numbering lock held p50",
                f"{numbering['per_transaction']['p50']} ms a transaction",
                f"{numbering['per_command']['p50']} ms a command "
                f"({numbering['commands_per_transaction']} a transaction)",
            )
        )
    latency = figures.get("db_latency")
    if latency:
        rows.append(
            (
                "database round trip p50",
                f"{latency['db_roundtrip_ms']['p50']} ms (through the proxy)",
                "",
            )
        )
        for key, run in latency.items():
            if not key.startswith("hosts_"):
                continue
            hosts = key.removeprefix("hosts_")
            for name in WRITE_KINDS:
                rows.append(
                    (
                        f"  {name}, {hosts} process(es)",
                        f"{run[name]['per_s']:.0f} /s",
                        f"{run[name]['ratio_to_local']:.0%} of local, "
                        f"{run[name]['roundtrips_per_command']} round trips and workers' "
                        f"CPU {run[name]['workers_cpu_ms_per_command']} ms a command",
                    )
                )
    lines = [f"{name:<26}{value:<28}{note}" for name, value, note in rows]
    lines.append(
        f"{figures['cores']} cores, {figures['cpu_model']}; "
        + ", ".join(f"{k} {v}" for k, v in figures["versions"].items())
    )
    return "\n".join(lines)


def dumps(figures: dict[str, Any]) -> str:
    """The one JSON document of ``--json``."""
    return json.dumps(figures, ensure_ascii=False)
