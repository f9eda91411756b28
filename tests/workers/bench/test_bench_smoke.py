"""``jobordre bench`` end to end with tiny numbers: the JSON contract, never the speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.search import search_orders
from shared.store import SqliteStore as Store
from tests.conftest import JOBORDRE

pytestmark = pytest.mark.integration

#: The figures issue 7 names; each must be a positive number in every run.
POSITIVE_FIGURES = (
    "baseline_per_s",
    "placements_per_s",
    "placements_ratio",
    "status_changes_per_s",
    "updates_per_s",
    "search_p50_ms",
    "search_p95_ms",
    "search_baseline_p95_ms",
    "roundtrip_p95_ms",
    "fair_get_order_alone_p95_ms",
    "fair_get_order_behind_burst_p95_ms",
    "worker_rss_mb",
    "cores",
)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "engine", [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]
)
def test_bench_json_has_every_figure(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    env["JOBORDRE_HOME"] = str(tmp_path)
    target = (
        ["--database-url", request.getfixturevalue("postgres_cluster").fresh_database()]
        if engine == "postgres"
        else []
    )
    done = subprocess.run(
        [
            *(str(JOBORDRE), "bench", "--json", "--quiet", "--orders", "400"),
            *("--processes", "1", "--threads", "2", "--messages", "30"),
            *("--baseline-messages", "200", "--queries", "20", "--roundtrips", "5"),
            *("--burst", "100"),
            *target,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=560,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout)
    for name in POSITIVE_FIGURES:
        assert isinstance(figures[name], int | float), name
        assert figures[name] > 0, name
    assert figures["write_errors"] == 0
    assert "event_latency_p95_ms" in figures
    assert figures["event_latency_p95_ms"] is None or figures["event_latency_p95_ms"] > 0
    assert figures["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert figures["parameters"]["orders"] == 400
    assert figures["store_engine"] == engine
    assert figures["search_total"] == "exact"
    for kind in ("placement", "order"):
        cost = figures["signature_cost"][kind]
        assert cost["ed25519_over_hmac"] > 0 and cost["verify_open_ratio"] > 0, cost
    assert figures["fair_burst"] == 100


def test_bench_without_redis_server_says_what_to_install(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    env.update(JOBORDRE_HOME=str(tmp_path), PATH=str(tmp_path))  # no redis-server on PATH
    done = subprocess.run(
        [sys.executable, "-c", "from workers.cli import main; main()", "bench", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 7, done.stdout + done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "unavailable"
    assert "redis-server" in error["message"] and "apt-get install" in error["message"]


def test_demo_loads_orders_the_store_can_search(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    env["JOBORDRE_HOME"] = str(tmp_path)
    done = subprocess.run(
        [str(JOBORDRE), "demo", "--orders", "40", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {
        "orders": 40,
        "first_id": 1,
        "last_id": 40,
        "db": str(tmp_path / "jobordre.db"),
    }
    target = Store(tmp_path / "jobordre.db")
    try:
        conn = target.connection()
        title = conn.execute("SELECT title FROM orders WHERE id = 7").fetchone()[0]
        _, page = search_orders(conn, text=title, filters={}, limit=50, offset=0)
        assert 7 in {order.id for order in page}
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0, "an import"
    finally:
        target.close()


@pytest.mark.timeout(600)
def test_bench_through_the_latency_proxy_reports_writes_round_trips_and_cpu(
    tmp_path: Path, postgres_cluster: Any
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    env["JOBORDRE_HOME"] = str(tmp_path)
    done = subprocess.run(
        [
            *(str(JOBORDRE), "bench", "--json", "--quiet", "--orders", "600"),
            *("--processes", "1", "--threads", "2", "--messages", "20"),
            *("--baseline-messages", "200", "--queries", "5", "--roundtrips", "5"),
            *("--database-url", postgres_cluster.fresh_database(), "--db-latency-ms", "1.25"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=560,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout)
    latency = figures["db_latency"]
    assert latency["db_roundtrip_ms"]["p50"] >= 2.0, "1.25 ms each way, measured"
    for name in ("placements", "status_changes", "updates"):
        run = latency["hosts_1"][name]
        assert run["per_s"] > 0, name
        assert run["errors"] == 0, name
        assert run["ratio_to_local"] > 0, name
        assert run["roundtrips_per_command"] > 0, name
        assert run["workers_cpu_ms_per_command"] > 0, name
        assert figures["workers_cpu_ms_per_command"][name] > 0, name
    numbering = figures["numbering_lock_ms"]
    assert numbering["per_transaction"]["p50"] > 0
    assert numbering["per_command"]["p50"] <= numbering["per_transaction"]["p50"]
