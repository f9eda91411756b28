"""``jobordre health`` exit codes and the worker's Prometheus endpoint, against real processes;
the outbox check on a store of each engine."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import keys
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.foundation import Foundation
from shared.settings import Settings
from shared.store import Store
from tests.conftest import JOBORDRE, System, free_port, wait_until
from tests.factories import CPR_1, order_doc
from workers.ops.health import Check, _outbox, _store

JOBCENTRE = "jobcentre:101"


def health(system: System, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
    result = system.cli("health", "--json", *args, **env)
    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    return result.code, checks


@pytest.mark.integration
def test_health_fails_until_store_and_workers_are_there(bare_system: System) -> None:
    code, checks = health(bare_system)
    assert code == 1
    assert [checks[n]["ok"] for n in ("broker", "store", "workers")] == [True, False, False]
    bare_system.start_worker(threads=1)
    code, checks = wait_until(lambda: (r := health(bare_system))[0] == 0 and r, 30, "healthy")
    assert all(c["ok"] for c in checks.values())
    assert checks["workers"]["detail"].startswith("1 alive")
    down = f"redis://127.0.0.1:{free_port()}/0"
    code, checks = health(bare_system, JOBORDRE_REDIS_URL=down)
    assert code == 1 and checks["broker"]["ok"] is False and checks["store"]["ok"] is True


@pytest.mark.integration
def test_a_stuck_outbox_is_unhealthy(bare_system: System) -> None:
    system = bare_system
    system.start_worker(threads=1)
    path = system.home / "order.json"
    path.write_text(json.dumps(order_doc()))
    system.json("order", "register", "--file", str(path), "--as", JOBCENTRE)
    system.stop_workers()
    with sqlite3.connect(system.db) as conn:  # as if the relay never pushed it
        conn.execute("UPDATE relay_mark SET pushed_seq = 0")
        conn.execute("UPDATE events SET at = '2026-01-01T00:00:00+00:00'")
    code, checks = health(system, "--min-workers", "0")
    assert code == 1 and checks["outbox"]["ok"] is False
    assert checks["outbox"]["detail"].startswith("1 events wait")
    assert (checks["workers"]["ok"], checks["store"]["ok"]) == (True, True)


def test_an_empty_file_where_the_store_should_be_is_not_a_healthy_store(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    settings.db_path.touch()  # what a read-only command used to leave behind
    check = _store(settings)
    assert not check.ok and "not a jobordre store" in check.detail


def test_a_store_without_an_outbox_passes_the_outbox_check(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    sqlite3.connect(db).close()
    check = _outbox(Settings(home=tmp_path, db=db), 60)
    assert check.ok and "no outbox" in check.detail


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def free_pair() -> int | None:
    """A port N such that N and N + 1 are both free right now."""
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port + 1))
        except OSError:
            return None
    return port


def answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


@pytest.mark.integration
def test_metrics_port_serves_job_and_domain_metrics_per_process(bare_system: System) -> None:
    system = bare_system
    port = wait_until(free_pair, 5, "two free ports in a row")
    with (system.home / "worker-0.log").open("wb") as log:
        process = subprocess.Popen(
            [
                str(JOBORDRE),
                "worker",
                "--processes",
                "2",
                "--threads",
                "2",
                "--metrics-port",
                str(port),
            ],
            env=system.env(JOBORDRE_METRICS_CACHE_MS="500"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    system.workers.append(process)
    wait_until(lambda: answers(port) and answers(port + 1), 30, "both metrics endpoints")
    path = system.home / "order.json"
    path.write_text(json.dumps(order_doc()))
    orders = [
        system.json("order", "register", "--file", str(path), "--as", JOBCENTRE) for _ in "ab"
    ]
    system.json("order", "status", str(orders[1]["id"]), "inactivated", "--as", JOBCENTRE)
    system.json("placement", "register", str(orders[0]["id"]), "--cpr", CPR_1, "--as", JOBCENTRE)

    def total(metric: str, **labels: str) -> float:
        found = 0.0
        for p in (port, port + 1):
            for (name, have), value in scrape(p).items():
                if name == metric and set(labels.items()) <= set(have):
                    found += value
        return found

    kinds = {"register_order": 2, "change_order_status": 1, "register_placement": 1}
    for kind, n in kinds.items():
        wait_until(
            lambda k=kind, n=n: total("dramatiq_messages_total", actor_name=k) == n,
            10,
            f"{kind} counted",
        )
    assert total("dramatiq_message_errors_total") == 0
    # The store's figures are cached for JOBORDRE_METRICS_CACHE_MS (500 ms here): the
    # scrapes that waited for the endpoints read an empty store.
    domain = wait_until(
        lambda: (d := scrape(port))[("jobordre_orders", (("status", "processing"),))] == 1 and d,
        10,
        "the store's figures after the cache period",
    )
    assert domain[("jobordre_orders", (("status", "inactivated"),))] == 1
    assert domain[("jobordre_placements", (("status", "placed"),))] == 1
    assert domain[("jobordre_workers_alive", ())] == 2
    queue = (("queue", "jobordre.commands"), ("state", "ready"))
    assert domain[("jobordre_queue_messages", queue)] == 0


@pytest.mark.integration
def test_a_taken_metrics_port_stops_the_worker_with_a_clear_error(bare_system: System) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = bare_system.cli("worker", "--metrics-port", str(port))
    assert result.code == 7
    assert f"cannot serve metrics on port {port}" in result.err


def engine_settings(store_url: str, home: Path) -> Settings:
    if store_url.startswith("postgresql://"):
        return Settings(home=home, database_url=store_url)
    return Settings(home=home, db=Path(store_url))


def test_the_outbox_check_reads_either_engine(
    any_store: Store, store_url: str, tmp_path: Path
) -> None:
    settings = engine_settings(store_url, tmp_path)
    assert _outbox(settings, 60) == Check("outbox", True, "empty")
    with any_store.write() as tx:
        key = keys.create(tx, JOBCENTRE, utc_now())
    envelope = new_envelope(CommandKind.REGISTER_ORDER, JOBCENTRE, {"order": order_doc()}, key=key)
    assert Foundation(any_store).handle(envelope)["ok"]
    with any_store.write() as tx:  # as if the relay never pushed it, for an hour
        tx.execute("UPDATE events SET at = '2026-01-01T00:00:00+00:00'")
    check = _outbox(settings, 60)
    assert not check.ok and check.detail.startswith("1 events wait")


@pytest.mark.postgres
def test_a_postgres_database_without_the_schema_has_no_outbox_to_check(
    postgres_cluster: Any, tmp_path: Path
) -> None:
    url = str(postgres_cluster.fresh_database(migrated=False))
    check = _outbox(engine_settings(url, tmp_path), 60)
    assert check.ok and "no outbox" in check.detail
