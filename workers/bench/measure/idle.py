"""Idle CPU of `jobordre up` (itself, its broker, its worker processes) over a minute,
with 1 and 2 worker processes. Run: .venv/bin/python workers/bench/measure/idle.py
.venv/bin/jobordre"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    kids: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        kids.setdefault(pp, []).append(p)
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += kids.get(p, [])
    return found


def ticks(pid: int) -> int:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except OSError:
        return 0


def measure(args: list[str], settle_s: float = 20, window_s: float = 60) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="jo-idle-")) / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    env["JOBORDRE_HOME"] = str(home)
    up = subprocess.Popen(
        [sys.argv[1], "up", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while not (home / "embedded.json").exists():
        time.sleep(0.1)
    time.sleep(settle_s)
    broker = json.loads((home / "embedded.json").read_text())["broker_pid"]
    pids = [*tree(up.pid), broker]
    before = {p: ticks(p) for p in pids}
    t0 = time.monotonic()
    time.sleep(window_s)
    wall = time.monotonic() - t0
    used = {p: (ticks(p) - before[p]) / os.sysconf("SC_CLK_TCK") for p in pids}
    up.send_signal(signal.SIGTERM)
    up.wait(60)
    return {
        "args": args,
        "processes": len(pids),
        "cpu_pct_of_one_core": round(100 * sum(used.values()) / wall, 2),
        "broker_pct": round(100 * used[broker] / wall, 2),
    }


arguments: list[str]
for arguments in ([], ["--processes", "2"]):
    print(json.dumps(measure(arguments)), flush=True)
