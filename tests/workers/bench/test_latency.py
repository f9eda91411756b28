"""The benchmark's latency proxy delays each direction and counts the client's round trips."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers.bench.harness import _free_port, _stop


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback echo server: what it reads, it sends back at once."""
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    thread.join(5)


def test_each_round_trip_is_delayed_both_ways_and_counted(echo_port: int, tmp_path: Path) -> None:
    listen, stats = _free_port(), tmp_path / "stats.json"
    proxy = subprocess.Popen(
        [
            *(sys.executable, "-m", "workers.bench.latency", str(listen), "127.0.0.1"),
            *(str(echo_port), "20", str(stats)),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert proxy.stdout is not None
        assert proxy.stdout.readline() == b"latency proxy ready\n"
        samples = []
        with socket.create_connection(("127.0.0.1", listen)) as client:
            for index in range(5):
                started = time.perf_counter()
                client.sendall(f"ping {index}".encode())
                assert client.recv(100) == f"ping {index}".encode(), "in order, intact"
                samples.append(time.perf_counter() - started)
        assert min(samples) >= 0.040, "20 ms each way: at least 40 ms a round trip"
        time.sleep(0.3)
        counts = json.loads(stats.read_text())
        assert counts == {"exchanges": 5, "connections": 1}
    finally:
        _stop(proxy)
        assert proxy.stdout is not None
        proxy.stdout.close()
