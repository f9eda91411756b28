"""``jobordre up`` (broker and workers in one process) and ``jobordre worker``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.errors import InvalidInput
from shared.settings import Settings


def add_commands(commands: Any) -> None:
    """Add ``jobordre up`` and ``jobordre worker``."""
    up = commands.add_parser("up", help="run broker and workers in one process (embedded default)")
    up.set_defaults(handler=_up)
    up.add_argument(
        "--processes", type=int, metavar="N", help="worker processes (default 1: best on 2 cores)"
    )
    up.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="one short line per job (text) or one JSON object per job (json)",
    )
    up.add_argument("--log-file", metavar="FILE", help="also append the JSON job log to FILE")
    worker = commands.add_parser("worker", help="run workers against JOBORDRE_REDIS_URL")
    worker.set_defaults(handler=_worker)
    worker.add_argument("--processes", type=int, help="worker processes (default 1)")
    worker.add_argument(
        "--threads",
        type=int,
        help="query threads per process (default 8); write commands have one thread of their own",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve Prometheus metrics on port N (process i of --processes on N + i)",
    )


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from workers.embedded.up import DEFAULT_PROCESSES, UpOptions, run_up

    processes = args.processes if args.processes is not None else DEFAULT_PROCESSES
    if not 1 <= processes <= 64:
        raise InvalidInput("--processes: from 1 to 64", field="processes")
    log_file = Path(args.log_file) if args.log_file else None
    return run_up(settings, UpOptions(processes, args.log_format, log_file))


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.transport.broker import resolve_redis_url
    from workers.worker.runner import run_workers

    if not settings.redis_url:
        raise InvalidInput(
            "jobordre worker needs JOBORDRE_REDIS_URL; without it, run `jobordre up`",
            field="JOBORDRE_REDIS_URL",
        )
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": args.metrics_port})
    return run_workers(
        settings,
        resolve_redis_url(settings),
        args.processes or settings.worker_processes,
        args.threads or settings.worker_threads,
    )
