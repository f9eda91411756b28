"""Write throughput of `jobordre up` with 1 and 2 worker processes on this machine: 8
client threads register orders through the embedded broker and wait for each reply.
Run: .venv/bin/python -m workers.bench.measure.up_processes [COMMANDS]"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from shared.commands import CommandKind
from shared.settings import Settings
from tests.factories import order_doc
from workers.client import Client

JOBORDRE = Path(sys.executable).parent / "jobordre"
THREADS = 8


def measure(processes: int, commands: int) -> float:
    home = Path(tempfile.mkdtemp(prefix="jo-tp-")) / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    env["JOBORDRE_HOME"] = str(home)
    up = subprocess.Popen(
        [str(JOBORDRE), "up", "--processes", str(processes)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not (home / "embedded.json").exists():
        time.sleep(0.1)
    time.sleep(5)
    subprocess.run(
        [str(JOBORDRE), "keys", "create", "jobcentre:101"], env=env, check=True, capture_output=True
    )
    settings = Settings(home=home)
    clients = [Client(settings, "jobcentre:101") for _ in range(THREADS)]
    clients[0].call(CommandKind.REGISTER_ORDER, {"order": order_doc()})  # warm up, key made
    share = commands // THREADS

    def send(client: Client) -> None:
        for _ in range(share):
            client.call(CommandKind.REGISTER_ORDER, {"order": order_doc()})

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = share * THREADS / (time.monotonic() - started)
    for client in clients:
        client.close()
    up.send_signal(signal.SIGTERM)
    up.wait(60)
    return rate


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    for processes in (1, 2, 1, 2):
        print(
            json.dumps({"processes": processes, "orders_per_s": round(measure(processes, count))})
        )
