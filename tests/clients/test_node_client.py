"""The Node.js reference client (clients/node) speaks the protocol to real workers: its own
tests run against a real redis-server and a real ``jobordre worker``, and its example
registers an order as the CLI would."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, System
from tests.factories import order_doc

pytestmark = pytest.mark.integration

NODE_CLIENT = ROOT / "clients" / "node"
KBH = "jobcentre:101"


def node() -> str:
    binary = shutil.which("node")
    if binary is None:
        pytest.fail(
            "node is not installed: install Node.js 18 or newer (Debian/Ubuntu: apt-get "
            "install nodejs npm); the README's test command does this for you"
        )
    if not (NODE_CLIENT / "node_modules" / "redis").is_dir():
        pytest.fail(
            "clients/node has no node_modules: run `npm ci` in clients/node (the README's "
            "test command does this for you)"
        )
    return binary


@pytest.fixture(scope="module")
def key_file(system: System) -> Path:
    path = system.home / "node-client" / "jobcentre_101.key"
    result = system.cli("keys", "create", KBH, "--out", str(path))
    assert result.code == 0, result.out + result.err
    return path


@pytest.fixture(scope="module")
def key_file_v2(system: System) -> Path:
    path = system.home / "node-client" / "jobcentre_101.v2.key"
    result = system.cli("keys", "create", KBH, "--protocol", "2", "--out", str(path))
    assert result.code == 0, result.out + result.err
    return path


def node_env(system: System, key_file: Path, **extra: str) -> dict[str, str]:
    return system.env(JOBORDRE_KEY_FILE=str(key_file), **extra)


@pytest.mark.parametrize(
    "protocol", [pytest.param(1, id="protocol-1"), pytest.param(2, id="protocol-2")]
)
def test_the_node_clients_own_tests_pass_against_real_workers(
    system: System, key_file: Path, key_file_v2: Path, tmp_path: Path, protocol: int
) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order_doc()), encoding="utf-8")
    done = subprocess.run(
        [
            node(),
            "--test",
            "--test-reporter=spec",
            "test/vectors.test.js",
            "test/vectors_v2.test.js",
            "test/workers.test.js",
        ],
        cwd=NODE_CLIENT,
        env=node_env(
            system,
            key_file if protocol == 1 else key_file_v2,
            JOBORDRE_TEST_ORDER_FILE=str(order_file),
        ),
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "against real workers" in report
    assert "drops a forged reply" in report
    assert "protocol 2 vectors" in report
    if protocol == 2:
        assert "is told which field is wrong" in report
    assert "# fail 0" in report or "ℹ fail 0" in report, report


def test_the_example_prints_the_registered_order(
    system: System, key_file: Path, tmp_path: Path
) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order_doc(title="Tømrer til Node-eksemplet")), "utf-8")
    done = subprocess.run(
        [node(), "examples/register-order.js", str(order_file), "--as", KBH],
        cwd=NODE_CLIENT,
        env=node_env(system, key_file),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    order = json.loads(done.stdout)
    assert order["title"] == "Tømrer til Node-eksemplet"
    assert order["registered_by"] == KBH
    # The CLI sees the same order in the store.
    shown = system.json("order", "get", str(order["id"]), "--as", KBH)
    assert shown["title"] == order["title"]


@pytest.mark.parametrize(
    ("args", "exit_code", "code"),
    [
        pytest.param(["--as", "jobcentre:751"], 3, "forbidden", id="someone-elses-key"),
        pytest.param([], 2, "validation_error", id="no-principal"),
    ],
)
def test_the_example_fails_with_the_clis_codes(
    system: System, key_file: Path, tmp_path: Path, args: list[str], exit_code: int, code: str
) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order_doc()), "utf-8")
    done = subprocess.run(
        [node(), "examples/register-order.js", str(order_file), *args],
        cwd=NODE_CLIENT,
        env=node_env(system, key_file),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == exit_code, done.stdout + done.stderr
    assert json.loads(done.stdout)["error"]["code"] == code
