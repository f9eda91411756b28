"""How fast a write command can go with the store taken out: the protocol's floor.

Run: ``.venv/bin/python -m workers.bench.measure.floor [--orders 20000] [--commands 2000]
[--rounds 2]``. Each round places on open orders of its own (about 60 % of the orders
are open), so ``2 x rounds x commands`` must not exceed them. Not a test (pytest does
not collect it).

Like ``jobordre bench``: a private redis-server, a fresh SQLite store of generated orders,
2 worker processes x 8 threads, a client sending many placements in flight and waiting for
every reply, and the no-op Dramatiq baseline on the same Redis. Each round measures, in a
new random order so drift hits all alike:

* ``noop``: the bench's no-op baseline (messages/s);
* ``placements``: real ``jobordre worker`` processes, as the bench runs them;
* ``no_store``: the same workers with :meth:`Foundation.answer_writes` replaced by what it
  does before its transaction (each command verified, opened, its payload parsed and
  validated) and an ok reply: everything
  jobordre does for a command (the signature and age checks, opening the sealed CPR, the
  job log line, sealing the reply, the reply and ack on Redis, the client's signing,
  sealing and wait) except the store.

Each reports its rate, its ratio to the round's no-op baseline, and the CPU per command
of the worker processes, Redis and the client (``/proc/<pid>/stat``, user + system). A
write command's ratio cannot pass its ``no_store`` ratio however cheap the store gets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.commands import CommandKind
from shared.settings import Settings
from workers.bench import harness
from workers.bench.generator import Generator, load_orders
from workers.client import Client

#: Worker processes (of 8 threads each), as the bench runs them.
PROCESSES = 2
#: Clock ticks per second of ``/proc/<pid>/stat``'s CPU times.
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def redis_pid(url: str) -> int:
    """The pid of the private redis-server listening on ``url``'s port."""
    port = url.rsplit(":", 1)[1].split("/")[0].encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        # redis-server retitles itself "redis-server 127.0.0.1:PORT".
        if b"redis-server" in text and (b":" + port in text or b"\0" + port in text):
            return int(cmdline.parent.name)
    raise RuntimeError(f"no redis-server on port {port.decode()}")


def skip_the_store() -> None:
    """Make this process's foundation answer write commands without the store."""
    from shared.envelope import Envelope
    from shared.foundation import Answer, Foundation, _Prepared, ok_reply

    def answer_writes(self: Foundation, envelopes: list[Envelope]) -> list[Answer | Exception]:
        prepared = map(self._prepare_write, envelopes)
        return [
            Answer(ok_reply(each.envelope.command_id, {"skipped": "store"}), each.key)
            if isinstance(each, _Prepared)
            else each
            for each in prepared
        ]

    Foundation.answer_writes = answer_writes  # type: ignore[method-assign,assignment]


def _workers_argv(no_store: bool) -> list[str]:
    boot = "from workers.cli import main; main()"
    if no_store:
        boot = "from workers.bench.measure.floor import skip_the_store; skip_the_store(); " + boot
    # One process per command: `--processes 2` would spawn fresh interpreters, which the
    # patch of skip_the_store does not reach.
    return [sys.executable, "-c", boot, "worker", "--processes", "1", "--threads", "8"]


def timed_sends(
    settings: Settings,
    workdir: Path,
    argv: list[str],
    ready: bytes,
    kind: CommandKind,
    payloads: list[dict[str, Any]],
    *,
    warm: bool = True,
    check: Callable[[Client], None] | None = None,
) -> dict[str, float]:
    """Run :data:`PROCESSES` copies of ``argv`` (each logs ``ready`` once up), send
    ``payloads`` of ``kind`` as the bench does, and time them: the rate, the errors, and
    the CPU per command of those processes, Redis and this client. ``warm`` sends the
    bench's 200 warm-up reads first; ``check`` runs with the client before they stop."""
    with contextlib.ExitStack() as stack:
        processes = [
            stack.enter_context(
                harness._serving(argv, settings, workdir / f"serving-{index}.log", ready, 1, "it")
            )
            for index in range(PROCESSES)
        ]
        client = Client(settings, harness.PRINCIPAL, url=str(settings.redis_url))
        stack.callback(client.close)
        if warm:
            harness.throughput(client, CommandKind.GET_ORDER, [{"order_id": 1}] * 200)
        pids = [process.pid for process in processes]
        server = redis_pid(str(settings.redis_url))
        before = sum(map(cpu_s, pids)), cpu_s(server), time.process_time()
        figures = harness.throughput(client, kind, payloads)
        after = sum(map(cpu_s, pids)), cpu_s(server), time.process_time()
        if check is not None:
            check(client)
    per_ms = 1000 / len(payloads)
    return {
        "per_s": figures["per_s"],
        "errors": figures["errors"],
        "cpu_ms": round((after[0] - before[0]) * per_ms, 3),
        "redis_cpu_ms": round((after[1] - before[1]) * per_ms, 3),
        "client_cpu_ms": round((after[2] - before[2]) * per_ms, 3),
    }


def _placements(
    settings: Settings, workdir: Path, payloads: list[dict[str, Any]], *, no_store: bool
) -> dict[str, float]:
    def skipped(client: Client) -> None:
        if no_store and not _skipped(client, payloads[0]):
            raise RuntimeError("the no-store workers wrote to the store: the patch did not take")

    figures = timed_sends(
        settings,
        workdir,
        _workers_argv(no_store),
        b"worker started",
        CommandKind.REGISTER_PLACEMENT,
        payloads,
        check=skipped,
    )
    errors = figures.pop("errors")
    if errors:
        raise RuntimeError(f"{errors} placements failed")
    figures["workers_cpu_ms"] = figures.pop("cpu_ms")
    return figures


def _skipped(client: Client, payload: dict[str, Any]) -> bool:
    """Whether the workers answer a placement without the store (it can be sent again)."""
    return client.call(CommandKind.REGISTER_PLACEMENT, payload) == {"skipped": "store"}


def main() -> None:
    """Print one JSON document: every round's figures and the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--commands", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    config = harness.BenchConfig(orders=args.orders, progress=False)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jobordre-floor-") as folder:
        workdir = Path(folder)
        with harness.private_redis(workdir) as url:
            settings = Settings(home=workdir, db=workdir / "floor.db", redis_url=url)
            load_orders(settings.db_path, args.orders, seed=config.seed, progress=False)
            # Every round places on orders of its own: a placement is one per person/order.
            needed = 2 * args.rounds * args.commands
            targets = harness._open_orders(settings, needed, 0)
            if len(targets) < needed:
                raise SystemExit(
                    f"{args.rounds} rounds of {args.commands} placements need {needed} open "
                    f"orders and {args.orders} orders have {len(targets)}: raise --orders or "
                    "lower --commands or --rounds"
                )
            generator = Generator(config.seed + 2)
            batches = iter(
                [generator.placement(order_id) for order_id, _ in targets[index :: 2 * args.rounds]]
                for index in range(2 * args.rounds)
            )
            for _ in range(args.rounds):
                figures: dict[str, Any] = {}
                order = ["noop", "placements", "no_store"]
                random.shuffle(order)
                for name in order:
                    if name == "noop":
                        figures[name] = {
                            "per_s": round(harness.measure_baseline(settings, config, workdir), 1)
                        }
                    else:
                        figures[name] = _placements(
                            settings, workdir, next(batches), no_store=name == "no_store"
                        )
                for name in ("placements", "no_store"):
                    figures[name]["ratio"] = round(
                        figures[name]["per_s"] / figures["noop"]["per_s"], 3
                    )
                rounds.append(figures)
    medians = {
        name: {
            field: round(statistics.median(each[name][field] for each in rounds), 3)
            for field in rounds[0][name]
        }
        for name in rounds[0]
    }
    document = {"medians": medians, "rounds": rounds, "machine": harness.machine()}
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
