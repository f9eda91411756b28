"""The shipped Prometheus files: rules that promtool accepts and passes, a config that a
real Prometheus runs with, scraping two real worker processes through a burst of commands.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.commands import CommandKind
from tests.conftest import System, free_port, wait_until
from tests.deploy.conftest import (
    PROMETHEUS_DIR,
    Prometheus,
    as_grafana_would,
    dashboard_exprs,
    tool,
)
from tests.factories import order_doc
from workers.client import Client

JOBCENTRE = "jobcentre:101"
#: Rules in alerts.yml (promtool counts recording and alerting rules).
ALERTS = (
    "JobordreNoLiveWorker",
    "JobordreWorkerDown",
    "JobordreBacklogGrowing",
    "JobordreOldestMessageTooOld",
    "JobordreDeadLettersArriving",
    "JobordreOutboxLagging",
    "JobordreJobErrorRate",
    "JobordreJobsSlow",
    "JobordreWorkerRestartingOften",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("check", "rules", "alerts.yml"), id="check-rules"),
        pytest.param(("test", "rules", "alerts_test.yml"), id="test-rules"),
        pytest.param(("check", "config", "prometheus.yml"), id="check-config"),
    ],
)
def test_promtool_accepts_the_shipped_files(args: tuple[str, ...]) -> None:
    done = promtool(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_every_alert_has_a_summary_and_a_runbook_and_a_unit_test() -> None:
    rules = (PROMETHEUS_DIR / "alerts.yml").read_text()
    tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text()
    blocks = re.split(r"\n      - alert: ", rules)[1:]
    assert sorted(block.split("\n", 1)[0] for block in blocks) == sorted(ALERTS)
    for block in blocks:
        name = block.split("\n", 1)[0]
        assert "summary:" in block and "runbook:" in block, name
        assert "severity:" in block, name
        assert f"alertname: {name}\n" in tests, f"{name} has no test in alerts_test.yml"
        # A rule tested only where it stays silent proves nothing: each must fire once.
        fires = re.search(rf"alertname: {name}\n\s+exp_alerts:\n\s+- exp_labels", tests)
        assert fires, f"no test in alerts_test.yml sees {name} fire"


def hold_write_lock(db: Path) -> sqlite3.Connection:
    """Take the store's write lock, as a stuck process would: jobs wait behind it."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


@pytest.fixture
def client_factory(bare_system: System) -> Iterator[Any]:
    """A jobcentre's client, sending as the CLI does (once the CLI made its key)."""
    made: list[Client] = []

    def make() -> Client:
        made.append(client_for(bare_system))
        return made[-1]

    yield make
    for client in made:
        client.close()


def client_for(system: System) -> Client:
    return Client(system.settings(), JOBCENTRE)


def both_up(prometheus: Prometheus, ports: list[int]) -> list[dict[str, Any]] | None:
    up = prometheus.query('up{job="jobordre-worker"} == 1')
    return up if len(up) == len(ports) else None


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_prometheus_sees_the_backlog_and_the_job_counts_of_two_worker_processes(
    bare_system: System, client_factory: Any, prometheus_factory: Any, tmp_path: Path
) -> None:
    system = bare_system
    ports = [free_port(), free_port()]
    for port in ports:  # two `jobordre worker` processes, one thread each
        system.start_worker(
            threads=1, JOBORDRE_METRICS_PORT=str(port), JOBORDRE_SQLITE_BUSY_TIMEOUT_MS="50000"
        )
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc()))
    system.json("order", "register", "--file", str(path), "--as", JOBCENTRE)  # makes the key
    client = client_factory()
    register = {"order": order_doc()}
    prometheus = prometheus_factory([f"127.0.0.1:{port}" for port in ports])
    up = wait_until(lambda: both_up(prometheus, ports), 30, "Prometheus to scrape both workers")
    # The target label `host` comes from prometheus.yml's relabelling of the address.
    assert sorted((s["metric"]["instance"], s["metric"]["host"]) for s in up) == sorted(
        (f"127.0.0.1:{port}", "127.0.0.1") for port in ports
    )

    count = 12
    # Both processes serve the same gauge: max, not sum.
    depth = (
        "sum(max by (state) (jobordre_queue_messages"
        '{queue="jobordre.commands", state=~"ready|in_flight"}))'
    )
    # The workers' scheduled jobs of their start are done: the burst is alone.
    wait_until(lambda: prometheus.scalar(depth) == 0, 30, "an idle commands queue")
    lock = hold_write_lock(system.db)
    try:
        sent = [client.send(CommandKind.REGISTER_ORDER, register) for _ in range(count)]
        # Every command of the burst is on the commands queue: ready, or fetched by a
        # worker whose batch waits for the lock.
        wait_until(lambda: prometheus.scalar(depth) == count, 60, f"a depth of {count}")
        held = prometheus.scalar(
            'max(jobordre_queue_messages{queue="jobordre.commands", state="in_flight"})'
        )
        assert held is not None and held > 0  # taken by workers whose batches wait
    finally:
        lock.rollback()
        lock.close()
    for command_id in sent:
        assert client.wait(command_id, timeout_ms=60_000)["status"] == "processing"

    jobs = 'sum(dramatiq_messages_total{actor_name="register_order"})'
    wait_until(lambda: prometheus.scalar(jobs) == count + 1, 30, "all jobs counted")
    per_process = prometheus.query('dramatiq_messages_total{actor_name="register_order"}')
    assert len(per_process) == 2  # each process counts its own jobs
    assert prometheus.scalar("sum(dramatiq_message_errors_total)") == 0
    wait_until(lambda: prometheus.scalar(depth) == 0, 30, "the queue to drain")
    orders = 'max(jobordre_orders{status="processing"})'
    wait_until(lambda: prometheus.scalar(orders) == count + 1, 30, "the orders counted")
    # The shipped rules run on real data without errors. Nothing is wrong but jobs that
    # waited for the lock: at most register_order slow, and pending (`for: 10m`).
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 13
    assert [r["name"] for r in rules if r["health"] != "ok"] == []
    alerts = [
        (a["metric"]["alertname"], a["metric"].get("actor_name"), a["metric"]["alertstate"])
        for a in prometheus.query("ALERTS")
    ]
    assert set(alerts) <= {("JobordreJobsSlow", "register_order", "pending")}, alerts
    # Every panel of the dashboard shows data from this run.
    empty = [
        title
        for title, expr in dashboard_exprs().items()
        if not prometheus.query(as_grafana_would(expr))
    ]
    assert empty == []
