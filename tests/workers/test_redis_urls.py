"""Production Redis URLs: a password, and TLS (``rediss://``), through workers and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer, System, free_port, start_redis
from tests.factories import order_doc

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55"


def run_system(server: RedisServer, tmp_path: Path) -> Iterator[System]:
    system = System(server, tmp_path / "home")
    system.home.mkdir()
    system.start_worker(threads=2)
    yield system
    system.stop_workers()
    server.stop()


@pytest.fixture
def with_password(tmp_path: Path) -> Iterator[System]:
    server = start_redis(
        tmp_path / "redis",
        extra_args=("--requirepass", PASSWORD),
        url=f"redis://:{PASSWORD}@127.0.0.1:{{port}}/0",
    )
    yield from run_system(server, tmp_path)


def make_certificates(folder: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed: install it (Debian: apt-get install openssl)")
    folder.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=jobordre test CA",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )


@pytest.fixture
def with_tls(tmp_path: Path) -> Iterator[System]:
    certs = tmp_path / "certs"
    make_certificates(certs)
    port = free_port()
    server = start_redis(
        tmp_path / "redis",
        port=free_port(),
        extra_args=(
            "--tls-port",
            str(port),
            "--port",
            "0",
            "--tls-cert-file",
            str(certs / "server.crt"),
            "--tls-key-file",
            str(certs / "server.key"),
            "--tls-ca-cert-file",
            str(certs / "ca.crt"),
            "--tls-auth-clients",
            "no",
        ),
        url=f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certs / 'ca.crt'}",
    )
    yield from run_system(server, tmp_path)


@pytest.mark.parametrize(
    "fixture", [pytest.param("with_password", id="password"), pytest.param("with_tls", id="tls")]
)
def test_workers_and_the_cli_work_over_it(
    request: pytest.FixtureRequest, fixture: str, tmp_path: Path
) -> None:
    system: System = request.getfixturevalue(fixture)
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc()))
    order = system.json("order", "register", "--file", str(path), "--as", "jobcentre:101")
    fetched = system.json("order", "get", str(order["id"]), "--as", "akasse:3f")
    assert fetched["title"] == order["title"]


def test_a_wrong_password_is_unavailable_and_never_printed(with_password: System) -> None:
    wrong = with_password.redis.url.replace(PASSWORD, "not-the-password")
    result = with_password.cli(
        "order", "get", "1", "--as", "jobcentre:101", "--json", JOBORDRE_REDIS_URL=wrong
    )
    assert result.code == 7
    assert json.loads(result.out)["error"]["code"] == "unavailable"
    assert "not-the-password" not in result.out + result.err
    assert PASSWORD.encode() not in with_password.worker_logs()
