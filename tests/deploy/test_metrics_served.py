"""Every metric the shipped rules and dashboard read is one a real worker serves."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import System, free_port, wait_until
from tests.deploy.conftest import PROMETHEUS_DIR, dashboard_exprs, promql_metrics, rule_exprs

#: Made by Prometheus itself for every target it scrapes (the jobordre workers here).
SYNTHESISED = {"up"}


def served_names(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'max by (queue) (jobordre_queue_messages{state="ready"})',
            {"jobordre_queue_messages"},
            id="aggregation",
        ),
        pytest.param(
            "histogram_quantile(0.95, sum by (actor_name, le) "
            '(rate(dramatiq_message_duration_milliseconds_bucket{host=~"$host"}[$__rate_interval])))',
            {"dramatiq_message_duration_milliseconds_bucket"},
            id="quantile",
        ),
        pytest.param(
            'absent(up{job="x"} == 1) or max(jobordre_workers_alive) < 1',
            {"up", "jobordre_workers_alive"},
            id="or",
        ),
        pytest.param(
            "jobordre:queue_ready:max > 100 and deriv(jobordre:queue_ready:max[10m]) > 0",
            {"jobordre:queue_ready:max"},
            id="recorded",
        ),
    ],
)
def test_the_metric_names_of_an_expression(text: str, expected: set[str]) -> None:
    assert promql_metrics(text) == expected


def test_every_rule_and_panel_has_an_expression() -> None:
    rules = rule_exprs((PROMETHEUS_DIR / "alerts.yml").read_text())
    assert len(rules) == 13 and all(rules.values())
    panels = dashboard_exprs()
    assert len(panels) >= 20 and all(panels.values())


@pytest.mark.integration
def test_every_metric_of_the_rules_and_the_dashboard_is_served_by_a_worker(
    bare_system: System,
) -> None:
    port = free_port()
    bare_system.start_worker(threads=1, JOBORDRE_METRICS_PORT=str(port))
    served = wait_until(
        lambda: (names := served_names(port)) and "jobordre_host_workers" in names and names,
        30,
        "the worker's metrics with its registration",
    )
    rules = rule_exprs((PROMETHEUS_DIR / "alerts.yml").read_text())
    recorded = {name for name in rules if ":" in name}
    wanted: dict[str, Any] = {
        **{f"rule {n}": promql_metrics(e) for n, e in rules.items()},
        **{f"panel {n}": promql_metrics(e) for n, e in dashboard_exprs().items()},
    }
    missing = {
        where: sorted(names - served - recorded - SYNTHESISED)
        for where, names in wanted.items()
        if names - served - recorded - SYNTHESISED
    }
    assert missing == {}
    read = set().union(*wanted.values())
    # The rules and panels read the job, queue, worker, store and process metrics alike.
    for name in (
        "dramatiq_messages_total",
        "dramatiq_message_rejects_total",
        "jobordre_queue_messages",
        "jobordre_worker_starts_total",
        "jobordre_outbox_oldest_age_seconds",
        "jobordre_orders",
        "jobordre_placements",
        "process_resident_memory_bytes",
    ):
        assert name in read and name in served, name
