"""The shipped batch consumer against a bare one: what its middleware and job log cost.

Run: ``.venv/bin/python -m workers.bench.measure.batch_consumer [--kind placements|
status_changes|updates] [--commands 4000] [--rounds 2]``. Not a test.

This began as the experiment that led to ``workers/worker/command_batches.py`` (README,
"Round six", item 4), when ``jobordre worker`` still took write commands on Dramatiq's
worker threads. Each round loads 20,000 generated orders into a fresh store on a private
redis-server, measures the bench's no-op Dramatiq baseline, then sends placements (or
status changes, or updates; many in flight, every reply waited for and verified by
:class:`workers.client.Client`, as the bench does) to two processes of either kind, in a
new random order per round:

* ``shipped``: two ``jobordre worker --processes 1 --threads 8``, as shipped (write
  commands in batches, :mod:`workers.worker.command_batches`);
* ``bare``: two processes of :func:`consume`, ONE thread each, which takes up to
  :data:`BATCH` messages of ``jobordre.commands`` at a time with Dramatiq's own fetch
  script, decodes them, applies them as the shipped consumer does
  (``Foundation.answer_writes``: one transaction, a savepoint each), and queues every
  reply and ack for one flush
  (:class:`workers.transport.outbound.Outbound`). No middleware, no job log, no ops agent.

It prints the rate, the ratio to the round's no-op baseline and the CPU per command of the
consumers, Redis and the client, and checks that every command answered is in the store.

What ``bare`` leaves out, and the shipped consumer has: retries with backoff and dead
letters for infrastructure errors (here a failed batch kills the process, and its
messages are redelivered from the ack set), undecodable and misrouted messages, the job
log line, metrics, the ops agent, graceful shutdown, and the queries queue.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import dramatiq

from shared import sealing
from shared.commands import CommandKind
from shared.envelope import decode_envelope
from shared.foundation import Answer, Foundation
from shared.settings import Settings, get_settings
from shared.signing import SigningKey
from shared.store import open_store
from workers.bench import harness
from workers.bench.generator import Generator, load_orders
from workers.bench.measure.floor import timed_sends
from workers.transport.broker import build_worker_broker
from workers.transport.redis_connection import connect_redis
from workers.worker.relay import Relay
from workers.worker.runner import _background, configure_logging

#: Most messages one batch takes (the group commit's bound).
BATCH = 64
#: The queue of write commands.
COMMANDS = "jobordre.commands"
#: The line a consumer logs when it is ready.
READY = b"batch consumer started"


def consume() -> None:
    """Consume ``jobordre.commands`` in batches until killed (the settings from the env)."""
    configure_logging()
    settings = get_settings()
    url = str(settings.redis_url)
    broker, outbound = build_worker_broker(settings, url, wait_ms=settings.worker_poll_ms)
    store = open_store(settings)
    foundation = Foundation(store, max_age_ms=settings.signature_max_age_ms)
    relay = Relay(store, connect_redis(url), settings, writes=foundation.writes)
    _background(relay.sweep_forever, settings.relay_interval_ms, name="relay")
    sys.stderr.buffer.write(READY + b"\n")
    sys.stderr.flush()
    while True:
        fetched = broker.do_fetch(COMMANDS, BATCH)
        if not fetched:
            continue
        messages = [dramatiq.Message.decode(data) for data in fetched]
        envelopes = [decode_envelope(message.args[0]) for message in messages]
        # The shipped consumer's foundation call: what differs is only what surrounds it.
        answers = foundation.answer_writes(envelopes)
        for message, envelope, answer in zip(messages, envelopes, answers, strict=True):
            if not isinstance(answer, Answer) or not isinstance(answer.key, SigningKey):
                raise RuntimeError(f"command {envelope.command_id} failed: {answer!r}")
            assert envelope.signature is not None
            sealed = sealing.seal_reply(answer.reply, answer.key, envelope.signature)
            outbound.push_reply(settings.redis_prefix, settings.reply_ttl_ms, sealed)
            outbound.ack(COMMANDS, message.options["redis_message_id"])
        relay.nudge()


#: The write kinds it can send: the bench's three.
KINDS = {
    "placements": CommandKind.REGISTER_PLACEMENT,
    "status_changes": CommandKind.CHANGE_ORDER_STATUS,
    "updates": CommandKind.UPDATE_ORDER,
}


def _payloads(kind: str, targets: list[tuple[int, int]]) -> list[dict[str, Any]]:
    if kind == "placements":
        generator = Generator(9)
        return [generator.placement(order_id) for order_id, _ in targets]
    if kind == "status_changes":
        return [{"order_id": order_id, "status": "inactivated"} for order_id, _ in targets]
    return [
        {"order_id": order_id, "expected_version": version, "patch": {"positions": 3}}
        for order_id, version in targets
    ]


def _applied(db: Path, kind: str) -> int:
    """How many commands of ``kind`` the store shows applied."""
    query = {
        "placements": "SELECT COUNT(*) FROM placements",
        "status_changes": "SELECT COUNT(*) FROM orders WHERE status = 'inactivated'",
        "updates": "SELECT COUNT(*) FROM orders WHERE json_extract(doc, '$.positions') = 3"
        " AND version > 1",
    }[kind]
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(query).fetchone()[0])
    finally:
        conn.close()


def _round(mode: str, kind: str, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jobordre-batch-") as folder:
        workdir = Path(folder)
        with harness.private_redis(workdir) as url:
            settings = Settings(home=workdir, db=workdir / "batch.db", redis_url=url)
            load_orders(settings.db_path, 20_000, seed=7, progress=False)
            noop = harness.measure_baseline(settings, harness.BenchConfig(progress=False), workdir)
            targets = harness._open_orders(settings, count, 0)
            already = _applied(settings.db_path, kind)
            payloads = _payloads(kind, targets)
            if mode == "bare":
                boot = "from workers.bench.measure.batch_consumer import consume; consume()"
                argv, ready = [sys.executable, "-c", boot], READY
            else:
                argv = [sys.executable, "-c", "from workers.cli import main; main()", "worker"]
                argv += ["--processes", "1", "--threads", "8"]
                ready = b"worker started"
            figures = timed_sends(settings, workdir, argv, ready, KINDS[kind], payloads, warm=False)
            applied = _applied(settings.db_path, kind) - already
    if figures["errors"] or applied < len(payloads):
        raise RuntimeError(f"{mode}: {figures['errors']} errors, {applied} {kind} applied")
    return {
        "per_s": figures["per_s"],
        "ratio": round(figures["per_s"] / noop, 3),
        "noop_per_s": round(noop, 1),
        "consumers_cpu_ms": figures["cpu_ms"],
        "redis_cpu_ms": figures["redis_cpu_ms"],
        "client_cpu_ms": figures["client_cpu_ms"],
    }


def main() -> None:
    """Print one JSON document: every round's figures and the median ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=sorted(KINDS), default="placements")
    parser.add_argument("--commands", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        modes = ["shipped", "bare"]
        random.shuffle(modes)
        rounds.append({mode: _round(mode, args.kind, args.commands) for mode in modes})
    medians = {
        mode: statistics.median(each[mode]["ratio"] for each in rounds)
        for mode in ("shipped", "bare")
    }
    print(json.dumps({"median_ratios": medians, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
