"""The Java reference client (clients/java, JDK 17 alone) speaks protocol 2: it is compiled
with javac, checks itself against docs/protocol-vectors-v2.json, runs its own tests against
a real redis-server and a real ``jobordre worker``, and its example registers an order."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, System
from tests.factories import order_doc

pytestmark = pytest.mark.integration

JAVA_CLIENT = ROOT / "clients" / "java"
KBH = "jobcentre:101"


def jdk(tool: str) -> str:
    binary = shutil.which(tool)
    if binary is None:
        pytest.fail(
            f"{tool} is not installed: install a JDK 17 or newer (Debian/Ubuntu: apt-get "
            "install openjdk-17-jdk-headless)"
        )
    return binary


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client, its tests and its example, compiled; warnings are errors."""
    out = tmp_path_factory.mktemp("java-classes")
    sources = sorted(str(p) for p in JAVA_CLIENT.rglob("*.java"))
    done = subprocess.run(
        [jdk("javac"), "-Xlint:all", "-Werror", "-d", str(out), *sources],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def key_file(system: System) -> Path:
    path = system.home / "java-client" / "jobcentre_101.v2.key"
    result = system.cli("keys", "create", KBH, "--protocol", "2", "--out", str(path))
    assert result.code == 0, result.out + result.err
    return path


def run_java(classes: Path, main: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [jdk("java"), "-cp", str(classes), main, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    return done.stdout


def test_the_java_client_reproduces_the_protocol_2_vectors(classes: Path) -> None:
    report = run_java(
        classes, "dk.jobordre.client.VectorsTest", str(ROOT / "docs" / "protocol-vectors-v2.json")
    )
    assert "# fail 0" in report
    assert "ok envelope built from its inputs" in report
    assert "ok reply is dropped: forged reply" in report


def test_the_java_clients_own_tests_pass_against_real_workers(
    system: System, classes: Path, key_file: Path, tmp_path: Path
) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order_doc()), encoding="utf-8")
    report = run_java(
        classes,
        "dk.jobordre.client.WorkersTest",
        env=system.env(JOBORDRE_KEY_FILE=str(key_file), JOBORDRE_TEST_ORDER_FILE=str(order_file)),
    )
    assert "# fail 0" in report, report
    assert "ok is told which field is wrong" in report
    assert "ok drops a forged reply" in report


def test_the_java_example_prints_the_registered_order(
    system: System, classes: Path, key_file: Path, tmp_path: Path
) -> None:
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order_doc(title="Tømrer til Java-eksemplet")), "utf-8")
    out = run_java(
        classes,
        "dk.jobordre.example.RegisterOrder",
        str(order_file),
        env=system.env(JOBORDRE_KEY_FILE=str(key_file)),
    )
    order = json.loads(out)
    assert order["title"] == "Tømrer til Java-eksemplet"
    assert order["registered_by"] == KBH
    shown = system.json("order", "get", str(order["id"]), "--as", KBH)
    assert shown["title"] == order["title"]
