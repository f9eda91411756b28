"""``jobordre bench`` and ``jobordre demo``: the benchmark and realistic demo data."""

from __future__ import annotations

import argparse
from typing import Any

from shared.settings import Settings
from workers.cli.common import emit


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from workers.bench.harness import BenchConfig, human, run_bench

    config = BenchConfig(
        orders=args.orders,
        processes=args.processes,
        threads=args.threads,
        messages=args.messages,
        baseline_messages=args.baseline_messages,
        queries=args.queries,
        roundtrips=args.roundtrips,
        burst=args.burst,
        seed=args.seed,
        progress=not args.quiet,
        database_url=args.database_url,
        db_latency_ms=args.db_latency_ms,
        protocol=args.protocol,
    )
    figures = run_bench(config)
    emit(figures, args.json, human(figures))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from workers.bench.generator import load_orders

    first, last = load_orders(
        settings.db_path, args.orders, seed=args.seed, progress=not args.quiet and not args.json
    )
    document = {
        "orders": args.orders,
        "first_id": first,
        "last_id": last,
        "db": str(settings.db_path),
    }
    emit(
        document,
        args.json,
        f"{args.orders} realistic job orders loaded (ids {first}–{last}) into {settings.db_path}",
    )
    return 0


def add_commands(commands: Any) -> None:
    """Add ``jobordre bench`` and ``jobordre demo``."""
    bench = commands.add_parser(
        "bench",
        help="measure throughput and latency against a private redis-server (README: Performance)",
    )
    bench.add_argument(
        "--orders",
        type=_positive,
        default=20_000,
        help="orders loaded for the search figures (default 20000; the target is 1000000)",
    )
    bench.add_argument(
        "--processes", type=_positive, default=2, help="worker processes (default 2)"
    )
    bench.add_argument(
        "--threads", type=_positive, default=8, help="threads per process (default 8)"
    )
    bench.add_argument(
        "--messages", type=_positive, default=2_000, help="commands per write kind (default 2000)"
    )
    bench.add_argument(
        "--baseline-messages",
        type=_positive,
        default=10_000,
        help="messages for the no-op Dramatiq baseline (default 10000)",
    )
    bench.add_argument(
        "--queries", type=_positive, default=500, help="timed searches (default 500)"
    )
    bench.add_argument(
        "--roundtrips", type=_positive, default=100, help="idle round trips timed (default 100)"
    )
    bench.add_argument(
        "--burst",
        type=_positive,
        default=2_000,
        help="cheap searches one organisation sends at once for the fair-share figure "
        "(default 2000)",
    )
    bench.add_argument("--seed", type=int, default=7, help="seed of the generated data")
    bench.add_argument(
        "--database-url",
        metavar="URL",
        help="measure the PostgreSQL engine: an empty database the generated store is copied to",
    )
    bench.add_argument(
        "--db-latency-ms",
        type=float,
        metavar="MS",
        help="with --database-url: also measure the writes through a TCP proxy delaying each "
        "direction by MS milliseconds (1.25: a database in another zone), with every worker "
        "process and with one",
    )
    bench.add_argument(
        "--protocol",
        type=int,
        choices=(1, 2),
        default=1,
        help="the protocol the write phases' client speaks (default 1)",
    )
    bench.add_argument("--quiet", action="store_true", help="no progress on stderr")
    bench.add_argument("--json", action="store_true", help="print one JSON document")
    bench.set_defaults(handler=_bench)

    demo = commands.add_parser(
        "demo", help="load realistic generated job orders straight into the store"
    )
    demo.add_argument("--orders", type=_positive, default=1_000, help="how many (default 1000)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--json", action="store_true", help="print one JSON document")
    demo.set_defaults(handler=_demo)
