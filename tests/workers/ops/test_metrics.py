"""The worker's job counters count what Dramatiq decided: retried, dead-lettered, skipped;
the store's gauges count what the store holds, on SQLite and on PostgreSQL alike.

Against a real redis-server and a real ``jobordre worker --metrics-port`` process: a
poison message that fails on every attempt, a message past its age limit, and a worker
of another host registered beside it. The store's gauges are scraped in-process from a
store of each engine, filled through the foundation as workers fill it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import psycopg
import pytest
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families

from shared import eventlog, keys
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.foundation import Foundation
from shared.settings import Settings
from shared.store import Store, mark_dead_letter_retried, record_dead_letter
from tests.conftest import System, free_port, wait_until
from tests.factories import CPR_1, CPR_2, CPR_3, order_doc
from workers.ops import registry
from workers.ops.metrics import DomainCollector

JOBCENTRE = "jobcentre:101"
COMMANDS = "jobordre.commands"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def job_counter(port: int, metric: str, actor: str) -> float:
    labels = (("actor_name", actor), ("queue_name", COMMANDS))
    return scrape(port).get((metric, labels), 0.0)


def start_with_metrics(system: System, **env: str) -> int:
    port = free_port()
    system.start_worker(threads=2, JOBORDRE_METRICS_PORT=str(port), **env)
    return port


def register(system: System, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc()))
    return system.json("order", "register", "--file", str(path), "--as", JOBCENTRE)


@pytest.mark.integration
def test_a_job_failing_every_attempt_counts_its_retries_then_one_reject(
    bare_system: System, tmp_path: Path
) -> None:
    system = bare_system
    port = start_with_metrics(system, JOBORDRE_MAX_RETRIES="2")
    order = register(system, tmp_path)
    with sqlite3.connect(system.db) as conn:  # every attempt now crashes on the stored doc
        conn.execute("UPDATE orders SET doc = '{\"broken\": true}' WHERE id = ?", (order["id"],))
    system.json("order", "status", str(order["id"]), "inactivated", "--as", JOBCENTRE, expect=7)
    actor = "change_order_status"
    wait_until(
        lambda: job_counter(port, "dramatiq_message_rejects_total", actor) >= 1,
        20,
        "the dead-lettered job to be counted as a reject",
    )
    counts = {
        metric: job_counter(port, metric, actor)
        for metric in (
            "dramatiq_messages_total",
            "dramatiq_message_errors_total",
            "dramatiq_message_retries_total",
            "dramatiq_message_rejects_total",
        )
    }
    # Three attempts (the first and two retries), all raised; the last one was final.
    assert counts == {
        "dramatiq_messages_total": 3,
        "dramatiq_message_errors_total": 3,
        "dramatiq_message_retries_total": 2,
        "dramatiq_message_rejects_total": 1,
    }
    assert job_counter(port, "dramatiq_messages_inprogress", actor) == 0


@pytest.mark.integration
def test_a_message_past_its_age_limit_counts_as_skipped_not_processed(
    bare_system: System,
) -> None:
    system = bare_system
    port = start_with_metrics(system)
    sender = RedisBroker(url=system.redis.url)
    try:
        sender.declare_queue(COMMANDS)
        stale = dramatiq.Message(
            queue_name=COMMANDS,
            actor_name="register_order",
            args=("{}",),
            kwargs={},
            options={"max_age": 1_000},
            message_timestamp=int(time.time() * 1000) - 60_000,
        )
        sender.enqueue(stale)
    finally:
        sender.close()
    actor = "register_order"
    wait_until(
        lambda: job_counter(port, "jobordre_messages_skipped_total", actor) == 1,
        20,
        "the stale message to be counted as skipped",
    )
    assert job_counter(port, "dramatiq_messages_total", actor) == 0
    assert job_counter(port, "dramatiq_messages_inprogress", actor) == 0


@pytest.mark.integration
def test_every_hosts_workers_show_in_queues_health_and_metrics(bare_system: System) -> None:
    system = bare_system
    port = start_with_metrics(system)
    here = socket.gethostname()
    client = system.redis.client()
    try:  # a worker on another host, registered as it would register itself
        other = {"id": "other-host-worker", "host": "worker-b", "pid": 4242, "threads": 8}
        registry.beat(client, "jobordre", {**other, "started_at": time.time()}, running=0)
        registry.record_start(client, "jobordre", other)
        queues = system.json("queues")
        assert sorted(w["host"] for w in queues["workers"] if w["alive"]) == sorted(
            [here, "worker-b"]
        )
        health = json.loads(system.cli("health", "--json", "--min-workers", "2").out)
        [workers] = [c for c in health["checks"] if c["name"] == "workers"]
        assert workers["ok"], workers
        assert f"{here} 1/1" in workers["detail"] and "worker-b 1/1" in workers["detail"]
        metrics = scrape(port)
        for hostname in (here, "worker-b"):
            alive = ("jobordre_host_workers", (("hostname", hostname), ("state", "alive")))
            assert metrics[alive] == 1, hostname
            started = ("jobordre_worker_starts_total", (("hostname", hostname),))
            assert metrics[started] == 1, hostname
        info = [k for k in metrics if k[0] == "jobordre_worker_info"]
        assert [dict(labels)["hostname"] for _, labels in info] == [here]
    finally:
        client.close()


# The store's gauges, on both engines: read through shared.store, as a scrape reads them.


def store_settings(store_url: str, home: Path) -> Settings:
    """What a worker of this store is configured with; its Redis is down, so a scrape
    shows the store's gauges only."""
    down = f"redis://127.0.0.1:{free_port()}/0"
    if store_url.startswith("postgresql://"):
        return Settings(home=home, database_url=store_url, redis_url=down)
    return Settings(home=home, db=Path(store_url), redis_url=down)


def collected(settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    collector = DomainCollector(settings)
    try:
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in collector.collect()
            for sample in family.samples
        }
    finally:
        collector.close()


def by_label(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str
) -> dict[str, float]:
    return {labels[0][1]: value for (metric, labels), value in samples.items() if metric == name}


def fill(store: Store) -> None:
    """Three orders (one inactivated, one closed as filled), three placements (one at
    interview), four dead letters (one retried), and events of which two are relayed."""
    foundation = Foundation(store)
    with store.write() as tx:
        key = keys.create(tx, JOBCENTRE, utc_now())

    def ok(kind: CommandKind, payload: dict[str, Any]) -> dict[str, Any]:
        reply = foundation.handle(new_envelope(kind, JOBCENTRE, payload, key=key))
        assert reply["ok"], reply
        result: dict[str, Any] = reply["result"]
        return result

    ids = [ok(CommandKind.REGISTER_ORDER, {"order": order_doc()})["id"] for _ in range(3)]
    ok(CommandKind.CHANGE_ORDER_STATUS, {"order_id": ids[1], "status": "inactivated"})
    placements = [
        ok(CommandKind.REGISTER_PLACEMENT, {"order_id": ids[2], "cpr": cpr})
        for cpr in (CPR_1, CPR_2, CPR_3)
    ]
    ok(
        CommandKind.CHANGE_PLACEMENT_STATUS,
        {"order_id": ids[2], "placement_id": placements[0]["id"], "status": "interview"},
    )
    ok(CommandKind.CHANGE_ORDER_STATUS, {"order_id": ids[2], "status": "closed_filled"})
    with store.write() as tx:
        letters = [
            record_dead_letter(
                tx, at=utc_now(), source=source, code="x", reason="test", message="{}"
            )
            for source in ("rejected", "rejected", "crashed", "crashed")
        ]
        mark_dead_letter_retried(tx, letters[3], utc_now(), "carol")
        eventlog.mark_pushed(tx, 2)
        # An hour before now, not before the module was imported (a long run is minutes).
        one_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        tx.execute("UPDATE events SET at = ? WHERE seq = 3", (one_hour_ago.isoformat(),))


def test_the_store_gauges_count_what_the_store_holds_on_either_engine(
    any_store: Store, store_url: str, tmp_path: Path
) -> None:
    fill(any_store)
    with any_store.read() as tx:
        events = int(tx.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    samples = collected(store_settings(store_url, tmp_path))
    assert by_label(samples, "jobordre_orders") == {
        "processing": 1,
        "inactivated": 1,
        "closed_filled": 1,
        "closed_expired": 0,
    }
    assert by_label(samples, "jobordre_placements") == {
        "placed": 2,
        "interview": 1,
        "hired": 0,
        "not_hired": 0,
        "declined": 0,
        "no_show": 0,
        "withdrawn": 0,
    }
    assert by_label(samples, "jobordre_dead_letters") == {
        "rejected": 2,
        "crashed": 1,
        "undecodable": 0,
    }
    assert events > 3
    assert samples[("jobordre_outbox_backlog", ())] == events - 2
    assert 3590 < samples[("jobordre_outbox_oldest_age_seconds", ())] < 3700
    # Redis is down: the queue gauges are missing, the store's are still served.
    assert not [name for name, _ in samples if name.startswith("jobordre_queue")]


def test_an_empty_store_serves_every_series_at_zero(
    any_store: Store, store_url: str, tmp_path: Path
) -> None:
    samples = collected(store_settings(store_url, tmp_path))
    assert set(by_label(samples, "jobordre_orders").values()) == {0}
    assert len(by_label(samples, "jobordre_orders")) == 4
    assert by_label(samples, "jobordre_dead_letters") == dict.fromkeys(
        ("rejected", "crashed", "undecodable"), 0
    )
    assert samples[("jobordre_outbox_backlog", ())] == 0
    assert samples[("jobordre_outbox_oldest_age_seconds", ())] == 0


@pytest.mark.parametrize(
    "where", [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]
)
def test_a_scrape_never_creates_a_store(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if where == "sqlite":
        home = tmp_path / "wrong-home"
        settings = store_settings(str(home / "jobordre.db"), home)
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        url = str(cluster.fresh_database(migrated=False))
        settings = store_settings(url, tmp_path)
    samples = collected(settings)
    assert not [name for name, _ in samples if name.startswith("jobordre_")]
    if where == "sqlite":
        assert not settings.db_path.exists()
    else:
        with psycopg.connect(str(settings.database_url)) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchone()
        assert tables is not None and tables[0] == 0, "nothing was created"


def _listening(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on ``port``, from the kernel's table."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.rpartition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


@pytest.mark.integration
def test_the_metrics_endpoint_listens_on_loopback_unless_told_otherwise(
    bare_system: System,
) -> None:
    port = start_with_metrics(bare_system)
    wait_until(lambda: _listening(port), 30, "the metrics endpoint")
    assert _listening(port) == {"0100007F"}, "127.0.0.1 only: no authentication on it"
    assert any(name == "jobordre_worker_info" for name, _ in scrape(port))
    wider = start_with_metrics(bare_system, JOBORDRE_METRICS_ADDR="0.0.0.0")
    wait_until(lambda: _listening(wider), 30, "the second endpoint")
    assert _listening(wider) == {"00000000"}


def test_a_scrape_reads_the_store_at_most_once_per_cache_period(
    any_store: Store, store_url: str, tmp_path: Path
) -> None:
    now = [0.0]
    settings = store_settings(store_url, tmp_path).model_copy(update={"metrics_cache_ms": 5_000})
    collector = DomainCollector(settings, clock_ms=lambda: now[0])
    try:

        def orders() -> dict[str, float]:
            samples = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in collector.collect()
                for sample in family.samples
            }
            return by_label(samples, "jobordre_orders")

        assert orders()["processing"] == 0
        fill(any_store)
        now[0] = 4_999.0
        assert orders()["processing"] == 0, "the figures of the last read, not a new GROUP BY"
        now[0] = 5_000.0
        assert orders()["processing"] == 1
    finally:
        collector.close()
