"""Real Prometheus for the deploy tests: Debian's ``prometheus`` and ``promtool``.

The shipped files (``deploy/prometheus/*.yml``) are used as they are; a test only writes
its own targets file and shortens the scrape interval so it need not wait 15 s a sample.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, free_port, wait_until

DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
#: A metric name as the rules and the dashboard write them (recording rules have colons).
METRIC_NAME = re.compile(r"\b(?:dramatiq|jobordre|process)_[a-z_]+\b")


def tool(name: str) -> str:
    """The path of ``name``, or a failed test saying what to install."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: install Debian's prometheus package (apt-get install "
            "prometheus); the README's test command does this for you"
        )
    return found


def metric_names(text: str) -> set[str]:
    """Every metric name that PromQL in ``text`` reads."""
    return set(METRIC_NAME.findall(text))


@dataclass
class Prometheus:
    """A private Prometheus server."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}"
        with urllib.request.urlopen(url, timeout=10) as response:
            document = json.load(response)
        assert document["status"] == "success", document
        return document["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's samples: each ``{"metric": labels, "value": [at, "text"]}``."""
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        """The one sample of ``expr``, or None while it has none."""
        samples = self.query(expr)
        return float(samples[0]["value"][1]) if len(samples) == 1 else None


def start_prometheus(workdir: Path, targets: list[str], scrape_interval_s: int = 1) -> Prometheus:
    """Prometheus with the shipped config and rules, scraping ``targets``."""
    binary = tool("prometheus")
    config_dir = workdir / "config"
    config_dir.mkdir(parents=True)
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    shortened = config.replace("scrape_interval: 15s", f"scrape_interval: {scrape_interval_s}s")
    shortened = shortened.replace(
        "evaluation_interval: 15s", f"evaluation_interval: {scrape_interval_s}s"
    )
    shortened = shortened.replace("scrape_timeout: 10s", f"scrape_timeout: {scrape_interval_s}s")
    assert shortened != config, "prometheus.yml no longer sets the intervals this test shortens"
    (config_dir / "prometheus.yml").write_text(shortened)
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", config_dir / "alerts.yml")
    (config_dir / "jobordre-workers.yml").write_text(
        json.dumps([{"targets": targets}])  # JSON is YAML
    )
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(port, process, log)

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_until(ready, 30, f"prometheus on port {port}", interval_s=0.1)
    return server


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Any]:
    """Start Prometheus servers for this test; all are stopped after it."""
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        server = start_prometheus(tmp_path / f"prometheus-{len(started)}", targets)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


#: PromQL words that look like metric names but are not.
PROMQL_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads (recording rule names included)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, Grafana's $__rate_interval
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def rule_exprs(rules_yaml: str) -> dict[str, str]:
    """Each rule's name (``record`` or ``alert``) and its ``expr``, from alerts.yml's layout.

    Reads the two forms the file uses: ``expr: ONE LINE`` and ``expr: >-`` with the
    expression on the more indented lines below.
    """
    exprs: dict[str, str] = {}
    name = ""
    lines = rules_yaml.splitlines()
    for i, line in enumerate(lines):
        found = re.match(r"\s*- (?:record|alert): (\S+)", line)
        if found:
            name = found.group(1)
            continue
        found = re.match(r"(\s*)expr: (.*)", line)
        if not found:
            continue
        indent, value = len(found.group(1)), found.group(2)
        if value.startswith(">"):
            body = []
            for below in lines[i + 1 :]:
                if len(below) - len(below.lstrip()) <= indent:
                    break
                body.append(below.strip())
            value = " ".join(body)
        exprs[name] = value
    return exprs


def dashboard_exprs() -> dict[str, str]:
    """Each query of the Grafana dashboard, by panel title and query letter."""
    dashboard = json.loads((DEPLOY / "grafana" / "jobordre.json").read_text())
    return {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


def as_grafana_would(expr: str, rate_interval: str = "1m") -> str:
    """``expr`` with the dashboard's variables as Grafana fills them in (every host)."""
    return expr.replace("$__rate_interval", rate_interval).replace('=~"$host"', '=~".*"')
