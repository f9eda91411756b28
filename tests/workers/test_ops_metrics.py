"""The worker's job counters count what Dramatiq decided: retried, dead-lettered, skipped.

Against a real redis-server and a real ``jobordre worker --metrics-port`` process: a
poison message that fails on every attempt, a message past its age limit, and a worker
of another host registered beside it.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import System, free_port, wait_until
from tests.factories import order_doc
from workers.ops import registry

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
