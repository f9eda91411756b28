"""The bench's idle search round trip on a store that exists already (a 1M-order store
takes ~12 minutes to load; this needs none).

Run: ``.venv/bin/python -m workers.bench.measure.roundtrip --db STORE [--processes 2]
[--threads 8] [--roundtrips 100] [--rounds 1]``. Starts a private redis-server and real
``jobordre worker`` processes on a copy-free ``STORE`` (searches only read it), then times
what ``jobordre bench`` times: one search at a time on an idle system, enqueue → reply,
with the bench's queries and seed. Also reports the search jobs' own ``duration_ms`` from
the workers' job log, which tells time in the job from time in the queue. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from shared.commands import CommandKind
from shared.settings import Settings
from workers.bench import harness
from workers.bench.generator import Generator
from workers.client import Client


def job_durations(log: Path) -> list[float]:
    """``duration_ms`` of the search jobs in a worker log."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        start = line.find("{")
        if start < 0 or '"search_orders"' not in line:
            continue
        try:
            found.append(float(json.loads(line[start:])["duration_ms"]))
        except (ValueError, KeyError):
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--roundtrips", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--warm", type=int, default=0, help="searches of other queries first (warm caches)"
    )
    args = parser.parse_args()
    config = harness.BenchConfig(
        processes=args.processes, threads=args.threads, roundtrips=args.roundtrips
    )
    with tempfile.TemporaryDirectory(prefix="jobordre-rt-") as folder:
        workdir = Path(folder)
        with harness.private_redis(workdir) as url:
            settings = Settings(home=workdir, db=args.db, redis_url=url)
            argv = [sys.executable, "-c", "from workers.cli import main; main()", "worker"]
            argv += ["--processes", str(args.processes), "--threads", str(args.threads)]
            log = workdir / "worker.log"
            with harness._serving(argv, settings, log, b"worker started", args.processes, "w"):
                client = Client(settings, harness.PRINCIPAL, url=url)
                try:
                    # As the bench warms up: every worker thread opens its connection.
                    harness.throughput(client, CommandKind.GET_ORDER, [{"order_id": 1}] * 200)
                    if args.warm:
                        other = Generator(config.seed + 4)
                        searches = [
                            {
                                "text": other.search_text(),
                                "municipality": other.municipality(),
                                "status": "processing",
                            }
                            for _ in range(args.warm)
                        ]
                        harness.throughput(client, CommandKind.SEARCH_ORDERS, searches)
                    for _ in range(args.rounds):
                        before = len(job_durations(log))
                        figures = harness.roundtrips(client, config)
                        jobs = job_durations(log)[before:]
                        quantiles = statistics.quantiles(jobs, n=20) if len(jobs) > 1 else [0]
                        print(
                            json.dumps(
                                {
                                    "layout": f"{args.processes}x{args.threads}",
                                    "roundtrip_ms": figures,
                                    "job_p50_ms": round(statistics.median(jobs), 2),
                                    "job_p95_ms": round(quantiles[-1], 2),
                                }
                            ),
                            flush=True,
                        )
                finally:
                    client.close()


if __name__ == "__main__":
    main()
