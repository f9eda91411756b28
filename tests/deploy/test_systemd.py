"""The systemd units: systemd accepts them, and their commands run a worker that passes
its start check and stops cleanly on the one SIGTERM that ``KillMode=mixed`` sends.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import JOBORDRE, System, free_port
from tests.deploy.conftest import DEPLOY

UNITS = DEPLOY / "systemd"
#: Where the units expect jobordre (the README's install steps put it there).
INSTALLED = "/opt/jobordre/.venv/bin/jobordre"


def unit(name: str) -> dict[str, list[str]]:
    """``Section.Key`` → values, in order, of a unit file."""
    entries: dict[str, list[str]] = {}
    section = ""
    for line in (UNITS / name).read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


def here(command: str, port: int | None = None) -> str:
    """A unit's command with this test's jobordre (and metrics port)."""
    command = command.replace(INSTALLED, str(JOBORDRE))
    return (
        command
        if port is None
        else command.replace("--metrics-port 9410", f"--metrics-port {port}")
    )


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail(
            "systemd-analyze is not installed: install Debian's systemd package; the "
            "README's test command does this for you"
        )
    names = sorted(p.name for p in UNITS.iterdir() if p.suffix in {".service", ".timer"})
    assert names == ["jobordre-health.service", "jobordre-health.timer", "jobordre-worker.service"]
    for name in names:  # with a jobordre that exists here: verify checks the binaries
        (tmp_path / name).write_text(here((UNITS / name).read_text()))
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in names)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_worker_stops_after_running_jobs_before_systemd_would_kill_it() -> None:
    worker = unit("jobordre-worker.service")
    assert worker["Service.KillMode"] == ["mixed"]
    assert worker["Service.Restart"] == ["on-failure"]
    stop_s = int(worker["Service.TimeoutStopSec"][0])
    assert stop_s * 1000 > 30_000  # JOBORDRE_WORKER_SHUTDOWN_MS's default


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("jobordre-worker.service", id="worker"),
        pytest.param("jobordre-health.service", id="health"),
    ],
)
def test_what_the_units_create_is_the_jobordre_users_alone(name: str) -> None:
    assert unit(name)["Service.UMask"] == ["0077"]


@pytest.mark.integration
def test_the_units_commands_start_a_healthy_worker_that_stops_on_sigterm(
    bare_system: System,
) -> None:
    worker = unit("jobordre-worker.service")
    [start] = worker["Service.ExecStart"]
    [check] = worker["Service.ExecStartPost"]
    [timer_check] = unit("jobordre-health.service")["Service.ExecStart"]
    process = subprocess.Popen(
        shlex.split(here(start, free_port())),
        env=bare_system.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        post = subprocess.run(
            shlex.split(here(check)), env=bare_system.env(), timeout=60, check=False
        )
        assert post.returncode == 0  # healthy within the unit's 30 s
        timed = subprocess.run(
            shlex.split(here(timer_check)), env=bare_system.env(), timeout=60, check=False
        )
        assert timed.returncode == 0
        process.send_signal(signal.SIGTERM)  # KillMode=mixed: the main process only
        assert process.wait(int(worker["Service.TimeoutStopSec"][0])) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stopped = subprocess.run(
        shlex.split(here(timer_check)),
        env=bare_system.env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert stopped.returncode == 1  # no worker left: the timer's check fails
