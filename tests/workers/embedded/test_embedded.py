"""``jobordre up``: a real Redis server as its child, found by other terminals via
JOBORDRE_HOME, and nothing accepted lost when ``up`` (or its broker) is killed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import JOBORDRE, wait_until
from tests.factories import CPR_1, order_doc

# Every test starts real `up` processes and drives the CLI (half a second per command on
# an idle machine, far more on a busy one).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def env(home: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    return {**clean, "JOBORDRE_HOME": str(home), **extra}


def cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOBORDRE), *args],
        env=env(home, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (the test process may be its parent).
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


@pytest.fixture
def home() -> Iterator[Path]:
    """A short JOBORDRE_HOME: a Unix socket path has at most 107 bytes, and pytest's own
    temporary folders can be longer than that."""
    folder = Path(tempfile.mkdtemp(prefix="jo-", dir="/tmp"))
    yield folder / "home"
    broker_pid = folder / "home" / "broker" / "redis.pid"
    if broker_pid.exists():  # a test that killed `up` leaves its broker behind on purpose
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(broker_pid.read_text()), signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Up:
    """One ``jobordre up`` process and its log."""

    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def address(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.home / "embedded.json").read_text())
        return document

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def start_up(home: Path, *args: str, **extra: str) -> Up:
    """Start ``jobordre up`` and wait until it has written its address."""
    home.parent.mkdir(parents=True, exist_ok=True)
    log = home.parent / f"up-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(JOBORDRE), "up", *args], env=env(home, **extra), stdout=out, stderr=out
        )
    running = Up(home, process, log)

    def written() -> bool:
        try:
            return bool(running.address()["pid"] == process.pid)
        except (OSError, ValueError):
            return False

    # A killed `up` leaves its address behind: wait for this one's.
    wait_until(
        lambda: written() or process.poll() is not None, 60, "jobordre up to write its address"
    )
    assert process.poll() is None, running.output
    return running


@pytest.fixture
def up(home: Path) -> Iterator[Up]:
    running = start_up(home)
    yield running
    if running.process.poll() is None:
        running.stop()


def register(home: Path, title: str, *, command_id: str, timeout_ms: int = 30_000) -> int:
    """Register an order titled ``title``; returns the exit code (7 when not answered in
    time: the command is on the queue)."""
    order_file = home.parent / f"{command_id}.json"
    order_file.write_text(json.dumps(order_doc(title=title)))
    done = cli(
        home, "order", "register", "--file", str(order_file), "--as", "jobcentre:101",
        "--command-id", f"embedded-{command_id}", "--timeout-ms", str(timeout_ms), "--json",
    )  # fmt: skip
    return done.returncode


def titles(home: Path) -> list[str]:
    found = cli(home, "order", "search", "--limit", "100", "--as", "jobcentre:101", "--json")
    assert found.returncode == 0, found.stdout + found.stderr
    return sorted(order["title"] for order in json.loads(found.stdout)["results"])


def test_commands_in_other_terminals_find_the_embedded_system(up: Up, tmp_path: Path) -> None:
    home = up.home
    address = up.address()
    assert address["redis_url"] == f"unix://{home}/broker/redis.sock?db=0"
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order_doc()))
    registered = cli(
        home, "order", "register", "--file", str(order_file), "--as", "jobcentre:101", "--json"
    )
    assert registered.returncode == 0, registered.stderr
    order = json.loads(registered.stdout)
    placed = cli(
        home, "placement", "register", str(order["id"]), "--cpr", CPR_1, "--as", "akasse:3f",
        "--json",
    )  # fmt: skip
    assert json.loads(placed.stdout)["status"] == "placed"
    found = json.loads(
        cli(home, "order", "search", "sosu", "--as", "jobcentre:751", "--json").stdout
    )
    assert [o["id"] for o in found["results"]] == [order["id"]]
    assert (home / "jobordre.db").exists(), "the store lives in JOBORDRE_HOME by default"
    assert CPR_1 not in up.output, "the terminal log never shows a CPR number"


def test_the_broker_is_a_real_redis_server_on_a_private_unix_socket(up: Up) -> None:
    broker = up.home / "broker"
    assert stat.S_IMODE(up.home.stat().st_mode) == 0o700, "the home up made is the user's alone"
    assert stat.S_IMODE(broker.stat().st_mode) == 0o700
    assert stat.S_IMODE((broker / "redis.sock").stat().st_mode) == 0o700
    client = redis.Redis(unix_socket_path=str(broker / "redis.sock"))
    info = client.info("server")
    config = client.config_get("appendonly")
    client.close()
    assert info["redis_version"].startswith("6.2.")
    assert info["process_id"] == up.address()["broker_pid"] != up.process.pid
    assert info["tcp_port"] == 0, "no TCP port: only the socket in the home folder"
    assert config == {"appendonly": "yes"}


def test_a_second_up_for_the_same_home_refuses(up: Up) -> None:
    second = subprocess.run(
        [str(JOBORDRE), "up"], env=env(up.home), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert up.process.poll() is None, "the first one keeps running"


def test_sigterm_stops_broker_and_workers_and_commands_then_say_how_to_start(up: Up) -> None:
    broker_pid = up.address()["broker_pid"]
    assert up.stop() == 0
    assert not (up.home / "embedded.json").exists()
    wait_until(lambda: not alive(broker_pid), 10, "the broker to exit with up")
    assert not (up.home / "broker" / "redis.sock").exists()
    result = cli(up.home, "order", "get", "1", "--as", "jobcentre:101", "--json")
    assert result.returncode == 7
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "unavailable" and "jobordre up" in error["message"]


def test_a_job_is_one_short_line_on_the_terminal_and_json_in_the_log_file(home: Path) -> None:
    log_file = home.parent / "jobs.jsonl"
    running = start_up(home, "--log-file", str(log_file))
    try:
        assert register(home, "Tømrer til skolen", command_id="line-1") == 0
        wait_until(lambda: "register_order by jobcentre:101: ok" in running.output, 10, "a line")
    finally:
        running.stop()
    line = next(x for x in running.output.splitlines() if "register_order" in x)
    assert line.endswith(" ms)") and "{" not in line, line
    jobs = [json.loads(x) for x in log_file.read_text().splitlines()]
    job = next(job for job in jobs if job["kind"] == "register_order")
    assert (job["outcome"], job["command_id"]) == ("ok", "embedded-line-1")


def test_log_format_json_prints_the_bare_job_lines(home: Path) -> None:
    running = start_up(home, "--log-format", "json")
    try:
        assert register(home, "Smed", command_id="json-1") == 0
        wait_until(lambda: '"command_id": "embedded-json-1"' in running.output, 10, "the job line")
    finally:
        running.stop()
    line = next(x for x in running.output.splitlines() if '"embedded-json-1"' in x)
    assert json.loads(line)["outcome"] == "ok"


# --- crashes: nothing accepted is lost ------------------------------------------------------


@pytest.mark.parametrize(
    "broker_too",
    [
        pytest.param(False, id="broker-orphaned-and-adopted"),
        pytest.param(True, id="broker-killed-too-and-restarted-on-its-data"),
    ],
)
def test_commands_queued_before_a_kill_9_run_after_the_next_up_without_resending(
    home: Path, broker_too: bool
) -> None:
    first = start_up(home)
    assert register(home, "Før nedbruddet", command_id="before") == 0
    broker_pid = first.address()["broker_pid"]
    # Freeze up's workers: the broker (a process of its own) still accepts commands, and
    # they wait on its queue. The clients give up waiting (exit 7) with them queued.
    first.process.send_signal(signal.SIGSTOP)
    queued = [f"Kø {i}" for i in range(3)]
    for i, title in enumerate(queued):
        assert register(home, title, command_id=f"queued-{i}", timeout_ms=300) == 7
    first.process.kill()
    first.process.wait()
    if broker_too:
        os.kill(broker_pid, signal.SIGKILL)
        wait_until(lambda: not alive(broker_pid), 10, "the broker to die")
        assert (home / "broker" / "redis.sock").exists(), "a stale socket is left behind"
    else:
        assert alive(broker_pid), "the broker outlives a kill -9 of up"
    second = start_up(home)
    try:
        wait_until(lambda: len(titles(home)) == 4, 120, "the queued commands to be applied")
        assert titles(home) == sorted(["Før nedbruddet", *queued]), "each exactly once"
        assert (second.address()["broker_pid"] == broker_pid) is not broker_too
        assert "took over" in second.output
    finally:
        assert second.stop() == 0


def test_jobs_running_when_up_is_killed_are_applied_once_after_the_next_up(home: Path) -> None:
    first = start_up(home)
    assert register(home, "Først", command_id="first") == 0
    errors = home.parent / "senders.log"
    with errors.open("ab") as error_log:
        senders = [
            subprocess.Popen(
                [
                    str(JOBORDRE),
                    "order",
                    "register",
                    "--file",
                    "-",
                    "--as",
                    "jobcentre:101",
                    "--command-id",
                    f"flight-{i}",
                    "--timeout-ms",
                    "60000",
                ],
                env=env(home),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=error_log,
            )
            for i in range(6)
        ]
    for i, sender in enumerate(senders):
        assert sender.stdin is not None
        sender.stdin.write(json.dumps(order_doc(title=f"Flyvende {i}")).encode())
        sender.stdin.close()
    # Kill it while the commands flow: some applied, the others queued or running.
    wait_until(lambda: len(titles(home)) >= 3, 120, "the first commands to be applied")
    first.process.kill()
    first.process.wait()
    second = start_up(home)
    try:
        wait_until(
            lambda: len(titles(home)) == 7 or errors.read_text(),
            120,
            "every sent command to be applied",
        )
        for sender in senders:
            sender.wait(60)
        assert errors.read_text() == ""
        assert titles(home) == sorted(["Først", *(f"Flyvende {i}" for i in range(6))])
    finally:
        second.stop()


def test_a_kill_9_of_up_with_worker_processes_leaves_no_worker_behind(home: Path) -> None:
    first = start_up(home, "--processes", "2")
    wait_until(lambda: first.output.count("worker started") >= 2, 60, "both workers")
    workers = first.address()["worker_pids"]
    assert len(workers) == 2
    first.process.kill()
    first.process.wait()
    wait_until(lambda: not any(alive(pid) for pid in workers), 40, "the workers to stop")
    second = start_up(home)
    try:
        assert register(home, "Efter", command_id="after") == 0
    finally:
        second.stop()


def test_a_stale_socket_and_a_pid_file_of_someone_else_are_cleaned_not_obeyed(
    home: Path,
) -> None:
    broker = home / "broker"
    broker.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(broker / "redis.sock"))
    stale.close()  # the file stays, nobody listens
    # A pid file naming a live process that is not our broker (a reused pid): this one.
    (broker / "redis.pid").write_text(str(os.getpid()))
    running = start_up(home)
    try:
        assert register(home, "Ny start", command_id="fresh") == 0
        assert running.address()["broker_pid"] != os.getpid()
    finally:
        running.stop()


def test_a_hung_broker_left_behind_is_replaced_not_waited_for(home: Path) -> None:
    first = start_up(home)
    assert register(home, "Før", command_id="before-hang") == 0
    broker_pid = first.address()["broker_pid"]
    first.process.kill()
    first.process.wait()
    os.kill(broker_pid, signal.SIGSTOP)  # it is there, but answers nothing
    second = start_up(home)  # within the test's timeout: a hung broker is not waited for
    try:
        assert not alive(broker_pid)
        assert second.address()["broker_pid"] != broker_pid
        assert titles(home) == ["Før"]
    finally:
        second.stop()


@pytest.mark.parametrize(
    "processes", [pytest.param("0", id="zero"), pytest.param("65", id="too-many")]
)
def test_processes_out_of_range_is_a_validation_error(home: Path, processes: str) -> None:
    done = cli(home, "up", "--processes", processes)
    assert done.returncode == 2
    assert "validation_error: --processes: from 1 to 64" in done.stderr
    assert not (home / "embedded.json").exists()


# --- a home that cannot hold the data ---------------------------------------------------------


def test_an_unwritable_home_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = cli(blocker / "home", "up")
    assert done.returncode == 7
    assert f"cannot write to JOBORDRE_HOME={blocker / 'home'}" in done.stderr


def test_a_home_too_deep_for_a_unix_socket_is_a_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 100) / "home"
    done = cli(deep, "up")
    assert done.returncode == 7
    assert "too deep for the embedded broker's Unix socket" in done.stderr
    assert "choose a shorter JOBORDRE_HOME" in done.stderr


@pytest.fixture
def full_disk(home: Path) -> Iterator[Path]:
    """A 4 MB tmpfs, filled: a disk with no room (mounting needs root, as in CI)."""
    mount = home.parent / "disk"
    mount.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs and needs root: {done.stderr.strip()}")
    try:
        with (mount / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_clear_error(full_disk: Path) -> None:
    done = cli(full_disk / "home", "up")
    assert done.returncode == 7
    assert "free some space" in done.stderr or "No space left" in done.stderr, done.stderr
