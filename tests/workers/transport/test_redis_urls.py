"""Production Redis URLs: a password, TLS (``rediss://``) and a Sentinel deployment with
both (``rediss+sentinel://``), through workers and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import RedisServer, System, free_port, start_redis, wait_until
from tests.factories import order_doc
from workers.transport.redis_connection import connect_redis

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


def tls_args(certs: Path) -> tuple[str, ...]:
    """redis-server's TLS options for the certificates :func:`make_certificates` made."""
    return (
        "--tls-cert-file",
        str(certs / "server.crt"),
        "--tls-key-file",
        str(certs / "server.key"),
        "--tls-ca-cert-file",
        str(certs / "ca.crt"),
        "--tls-auth-clients",
        "no",
    )


@pytest.fixture
def with_tls(tmp_path: Path) -> Iterator[System]:
    certs = tmp_path / "certs"
    make_certificates(certs)
    port = free_port()
    server = start_redis(
        tmp_path / "redis",
        port=free_port(),
        extra_args=("--tls-port", str(port), "--port", "0", *tls_args(certs)),
        url=f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certs / 'ca.crt'}",
    )
    yield from run_system(server, tmp_path)


SENTINEL_PASSWORD = "sentinel-Pa55"


@pytest.fixture
def with_sentinel_tls_password(tmp_path: Path) -> Iterator[System]:
    """A master with TLS and a password, known to the system only through a sentinel that
    speaks TLS and has a password of its own."""
    certs = tmp_path / "certs"
    make_certificates(certs)
    tls = tls_args(certs)
    port = free_port()
    master = start_redis(
        tmp_path / "redis",
        port=free_port(),
        extra_args=("--tls-port", str(port), "--port", "0", "--requirepass", PASSWORD, *tls),
        url=f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={certs / 'ca.crt'}",
    )
    sentinel_port = free_port()
    pairs = zip(tls[::2], tls[1::2], strict=True)  # the sentinel's TLS settings, as config
    (tmp_path / "sentinel").mkdir()
    config = tmp_path / "sentinel" / "sentinel.conf"
    config.write_text(
        f"port 0\ntls-port {sentinel_port}\nbind 127.0.0.1\ntls-replication yes\n"
        f"requirepass {SENTINEL_PASSWORD}\n"
        f"sentinel monitor jobordre 127.0.0.1 {port} 1\n"
        f"sentinel auth-pass jobordre {PASSWORD}\n"
        + "".join(f"{name.lstrip('-')} {value}\n" for name, value in pairs)
    )
    binary = shutil.which("redis-server")
    assert binary is not None
    sentinel = subprocess.Popen(
        [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = (
        f"rediss+sentinel://:{PASSWORD}@127.0.0.1:{sentinel_port}/jobordre/0"
        f"?sentinel_password={SENTINEL_PASSWORD}&ssl_ca_certs={certs / 'ca.crt'}"
    )

    def answers() -> bool:
        client = connect_redis(url, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    try:
        wait_until(answers, 20, "the master through its sentinel")
        yield from run_system(RedisServer(port, master.process, master.workdir, url), tmp_path)
    finally:
        sentinel.terminate()
        sentinel.wait(10)
        master.stop()


@pytest.mark.parametrize(
    "fixture",
    [
        pytest.param("with_password", id="password"),
        pytest.param("with_tls", id="tls"),
        pytest.param("with_sentinel_tls_password", id="sentinel-tls-password"),
    ],
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
