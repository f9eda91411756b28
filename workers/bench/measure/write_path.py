"""Measure the CPU one write command costs on the worker's write path, in-process.

Run: ``.venv/bin/python -m workers.bench.measure.write_path [--orders 3000] [--commands 1000]
[--runs 5] [--folder /dev/shm]``. ``--orders`` generated orders are bulk-loaded into a
SQLite store once; each run copies that store, builds signed envelopes (placements on open
orders, status changes, updates) as a client would send them, and times what a worker does
with each message but talk to Redis: ``Foundation.answer(decode_envelope(raw))`` and
sealing the reply, from one thread with :func:`time.process_time` (CPU time, far less noisy
than wall time on a shared machine). Not a test: figures (medians of the runs, ms of CPU
per command) are reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from shared.commands import CommandKind
from shared.envelope import decode_envelope, new_envelope
from shared.foundation import Foundation
from shared.sealing import seal_reply
from shared.signing import SigningKey
from shared.store import open_url
from tests.shared.test_foundation import JOBCENTRE, key_of
from workers.bench.generator import Generator, load_orders


def operator_key(path: Path) -> SigningKey:
    """The jobcentre's key, made as the operator makes it: by another process (here another
    store object), so the worker's key cache is not the one told about it."""
    operator = open_url(str(path))
    try:
        return key_of(Foundation(operator), JOBCENTRE)
    finally:
        operator.close()


def _open_orders(path: Path, count: int) -> list[tuple[int, int]]:
    store = open_url(str(path))
    try:
        rows = (
            store.connection()
            .execute(
                "SELECT id, version FROM orders WHERE status = 'processing' ORDER BY id LIMIT ?",
                (count,),
            )
            .fetchall()
        )
    finally:
        store.close()
    return [(int(row[0]), int(row[1])) for row in rows]


def _payloads(kind: CommandKind, targets: list[tuple[int, int]]) -> list[dict[str, Any]]:
    generator = Generator(7)
    if kind is CommandKind.REGISTER_PLACEMENT:
        return [generator.placement(order_id) for order_id, _ in targets]
    if kind is CommandKind.CHANGE_ORDER_STATUS:
        return [{"order_id": order_id, "status": "inactivated"} for order_id, _ in targets]
    return [
        {"order_id": order_id, "expected_version": version, "patch": {"positions": 3}}
        for order_id, version in targets
    ]


def _run(
    seed_db: Path,
    folder: Path,
    kind: CommandKind,
    commands: int,
    around: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> float:
    """ms of CPU per command for ``commands`` commands of ``kind`` on a fresh copy, with
    ``around()`` in force while they run (e.g. a step of the write path undone)."""
    path = folder / f"run-{kind.value}.db"
    shutil.copy(seed_db, path)
    targets = _open_orders(path, commands)
    store = open_url(str(path))
    try:
        foundation = Foundation(store)
        key = operator_key(path)
        raws = [
            new_envelope(kind, JOBCENTRE, payload, key=key).to_json()
            for payload in _payloads(kind, targets)
        ]
        failures = 0
        with around():
            # Warm-up outside the timing: the connection's statement cache, imports.
            foundation.answer(decode_envelope(raws[0]))
            started = time.process_time()
            for raw in raws[1:]:
                envelope = decode_envelope(raw)
                answer = foundation.answer(envelope)
                # Protocol 1 keys only here: the v1 reply seal is what is measured.
                if (
                    not isinstance(answer.key, SigningKey)
                    or envelope.signature is None
                    or not answer.reply["ok"]
                ):
                    failures += 1
                    continue
                seal_reply(answer.reply, answer.key, envelope.signature)
            spent = time.process_time() - started
    finally:
        store.close()
        path.unlink()
    if failures:
        raise RuntimeError(f"{failures} {kind.value} commands failed")
    return spent * 1000 / (len(raws) - 1)


def main() -> None:
    """Print one JSON document: median ms of CPU per command by kind, and every run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--folder",
        default=None,
        help="where the store files go (e.g. /dev/shm: keeps disk writes out of the CPU figure)",
    )
    args = parser.parse_args()
    kinds = (
        CommandKind.REGISTER_PLACEMENT,
        CommandKind.CHANGE_ORDER_STATUS,
        CommandKind.UPDATE_ORDER,
    )
    runs: dict[str, list[float]] = {kind.value: [] for kind in kinds}
    with tempfile.TemporaryDirectory(dir=args.folder) as name:
        folder = Path(name)
        seed_db = folder / "seed.db"
        load_orders(seed_db, args.orders, progress=False)
        for _ in range(args.runs):
            for kind in kinds:
                runs[kind.value].append(_run(seed_db, folder, kind, args.commands))
    figures = {
        kind: {
            "median_ms": round(statistics.median(values), 3),
            "runs": [round(v, 3) for v in values],
        }
        for kind, values in runs.items()
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
