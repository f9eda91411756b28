"""The short nemesis run in the normal suite: three minutes of load on the whole system
with every fault kind injected at least once, and no anomaly in the checker's report.

Needs what ``scripts/nemesis`` needs: ``redis-server``, PostgreSQL's server binaries
(``initdb``, ``pg_ctl``, ``pg_basebackup``) and, for the hosts' own links and homes, root
with ``ip netns`` and tmpfs mounts (without them the run falls back to loopback and plain
folders, and the report says so). It takes about four minutes of the suite's time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.run import KINDS

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_three_minutes_of_every_fault_leave_no_anomaly(tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        run = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.run", "--minutes", "3", "--report", str(report)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            out, _ = run.communicate(timeout=780)
        except subprocess.TimeoutExpired:
            run.terminate()  # the run stops every part it started on SIGTERM
            out, _ = run.communicate(timeout=60)
    text = report.read_text() if report.exists() else out
    print(text)
    log = errors.read_text()[-4000:]
    assert text.splitlines()[-1] == "anomalies: 0", text + log
    assert run.returncode == 0, log
    injected = re.search(r"^faults injected: (.*)$", text, re.MULTILINE)
    assert injected is not None, text
    log = text.split("fault log:", 1)[1]
    for kind in KINDS:
        assert f" {kind}: " in log, f"{kind} was not injected:\n{text}"
    assert "not injected" not in log, text
