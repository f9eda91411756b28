"""``jobordre up``: the whole system in one process, found by other terminals via JOBORDRE_HOME."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import JOBORDRE, wait_until
from tests.factories import CPR_1, order_doc

pytestmark = pytest.mark.integration


def env(home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    return {**clean, "JOBORDRE_HOME": str(home)}


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOBORDRE), *args],
        env=env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    home = tmp_path / "home"
    with (tmp_path / "up.log").open("wb") as log:
        process = subprocess.Popen(
            [str(JOBORDRE), "up"], env=env(home), stdout=log, stderr=subprocess.STDOUT
        )
    wait_until(
        lambda: (home / "embedded.json").exists() or process.poll() is not None,
        30,
        "jobordre up to write its address",
    )
    assert process.poll() is None, (tmp_path / "up.log").read_text()
    yield home, process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_commands_in_other_terminals_find_the_embedded_system(
    up: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    home, _ = up
    address = json.loads((home / "embedded.json").read_text())
    assert address["redis_url"].startswith("redis://127.0.0.1:")
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order_doc()))
    registered = cli(
        home, "order", "register", "--file", str(order_file), "--as", "jobcentre:101", "--json"
    )
    assert registered.returncode == 0, registered.stderr
    order = json.loads(registered.stdout)
    placed = cli(
        home,
        "placement",
        "register",
        str(order["id"]),
        "--cpr",
        CPR_1,
        "--as",
        "akasse:3f",
        "--json",
    )
    assert json.loads(placed.stdout)["status"] == "placed"
    found = json.loads(
        cli(home, "order", "search", "sosu", "--as", "jobcentre:751", "--json").stdout
    )
    assert [o["id"] for o in found["results"]] == [order["id"]]
    assert (home / "jobordre.db").exists(), "the store lives in JOBORDRE_HOME by default"


def test_a_second_up_for_the_same_home_refuses(up: tuple[Path, subprocess.Popen[bytes]]) -> None:
    home, _ = up
    second = subprocess.run(
        [str(JOBORDRE), "up"],
        env=env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert "already running" in second.stderr


def test_sigterm_stops_it_cleanly_and_commands_then_say_how_to_start(
    up: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    home, process = up
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert not (home / "embedded.json").exists()
    result = cli(home, "order", "get", "1", "--as", "jobcentre:101", "--json")
    assert result.returncode == 7
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "unavailable" and "jobordre up" in error["message"]
