"""The Grafana dashboard is one Grafana can import: a well-formed model with panels that
do not overlap, each on the dashboard's data source variable.

That every query has data in a real run: tests/deploy/test_prometheus.py; that every
metric it reads is served: tests/deploy/test_metrics_served.py.
"""

from __future__ import annotations

import json
from itertools import combinations
from typing import Any

from tests.deploy.conftest import DEPLOY

DASHBOARD: dict[str, Any] = json.loads((DEPLOY / "grafana" / "jobordre.json").read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]


def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
    grid = panel["gridPos"]
    return {
        (x, y)
        for x in range(grid["x"], grid["x"] + grid["w"])
        for y in range(grid["y"], grid["y"] + grid["h"])
    }


def test_the_dashboard_has_a_stable_uid_and_a_data_source_variable() -> None:
    assert DASHBOARD["uid"] == "jobordre"
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["host"]["includeAll"] and variables["host"]["allValue"] == ".*"


def test_every_panel_queries_through_the_variable_and_has_a_unique_id_and_title() -> None:
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in PANELS]
    assert len(titles) == len(set(titles))
    for panel in PANELS:
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_panels_fit_the_24_column_grid_without_overlapping() -> None:
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    for a, b in combinations(DASHBOARD["panels"], 2):
        assert not cells(a) & cells(b), (a["title"], b["title"])


def test_the_dashboard_covers_what_ops_people_watch() -> None:
    everything = " ".join(t["expr"] for p in PANELS for t in p["targets"])
    for metric in (
        "jobordre_queue_messages",  # queues
        "dramatiq_messages_total",  # throughput per kind
        "dramatiq_message_errors_total",  # errors per kind
        "dramatiq_message_duration_milliseconds_bucket",  # durations
        "jobordre_host_workers",  # workers
        "jobordre_dead_letters",  # dead letters
        "jobordre_outbox_oldest_age_seconds",  # outbox
        "jobordre_orders",  # orders by status
        "jobordre_placements",  # placements by status
    ):
        assert metric in everything, metric
