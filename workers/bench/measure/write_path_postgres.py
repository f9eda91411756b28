"""Measure the CPU a write command costs on PostgreSQL, in-process: the worker's side and
the server's.

Run: ``.venv/bin/python -m workers.bench.measure.write_path_postgres --database-url
postgresql://USER:PASS@127.0.0.1:PORT/postgres [--orders 20000] [--commands 1500]
[--batch 16] [--runs 3]``. The server must run on this machine (its backends' CPU is read
from ``/proc``) and the user must be allowed to create databases. ``--orders`` generated
orders are copied once into a template database; each run makes a fresh database from it,
builds signed envelopes (placements, status changes, updates on open orders, as
``write_path`` does) and applies them as a worker's batch consumer does,
``Foundation.answer_writes`` in batches of ``--batch``. Reported per command kind, in ms of
CPU per command (medians of the runs): ``client`` (this process, :func:`time.process_time`:
the foundation, psycopg, the threads of a batch's parts) and ``server`` (the user and
system time of the database's backends, from ``/proc/<pid>/stat``). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from shared.commands import CommandKind
from shared.envelope import decode_envelope, new_envelope
from shared.foundation import Answer, Foundation
from shared.store import open_url
from shared.store.copy import copy_store
from shared.store.sqlite import SqliteStore
from tests.shared.test_foundation import JOBCENTRE, key_of
from workers.bench.generator import load_orders
from workers.bench.measure.write_path import _payloads

KINDS = (
    CommandKind.REGISTER_PLACEMENT,
    CommandKind.CHANGE_ORDER_STATUS,
    CommandKind.UPDATE_ORDER,
)
#: The template database each run's database is made from.
TEMPLATE = "jobordre_write_path"


def _url(base: str, database: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + database


def _backends_cpu_s(admin: psycopg.Connection[Any], database: str) -> float:
    """User + system seconds of every backend connected to ``database``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [database])
    for (pid,) in rows.fetchall():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _template(admin: psycopg.Connection[Any], base: str, orders: int) -> None:
    admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
    admin.execute(f"CREATE DATABASE {TEMPLATE}")
    with tempfile.TemporaryDirectory() as folder:
        seed = Path(folder) / "seed.db"
        load_orders(seed, orders, seed=7, progress=False)
        source, target = SqliteStore(seed), open_url(_url(base, TEMPLATE))
        try:
            copy_store(source, target)
        finally:
            source.close()
            target.close()


def _run(admin: psycopg.Connection[Any], base: str, commands: int, batch: int) -> dict[str, Any]:
    database = f"jobordre_run_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {database} TEMPLATE {TEMPLATE}")
    store = open_url(_url(base, database))
    figures: dict[str, Any] = {}
    try:
        foundation = Foundation(store)
        key = key_of(foundation, JOBCENTRE)
        rows = store.connection().execute(
            "SELECT id, version FROM orders WHERE status = 'processing' ORDER BY id DESC LIMIT ?",
            (commands * len(KINDS) + batch * len(KINDS),),
        )
        targets = [(int(row[0]), int(row[1])) for row in rows.fetchall()]
        for kind in KINDS:
            mine, targets = targets[: commands + batch], targets[commands + batch :]
            envelopes = [
                decode_envelope(new_envelope(kind, JOBCENTRE, payload, key=key).to_json())
                for payload in _payloads(kind, mine)
            ]
            foundation.answer_writes(envelopes[:batch])  # warm-up: statement caches
            timed = envelopes[batch:]
            server, client = _backends_cpu_s(admin, database), time.process_time()
            failed = 0
            for start in range(0, len(timed), batch):
                for outcome in foundation.answer_writes(timed[start : start + batch]):
                    failed += not (isinstance(outcome, Answer) and outcome.reply["ok"])
            client = time.process_time() - client
            server = _backends_cpu_s(admin, database) - server
            figures[kind.value] = {
                "client_ms": client * 1000 / len(timed),
                "server_ms": server * 1000 / len(timed),
                "refused": failed,
            }
    finally:
        store.close()
        admin.execute(f"DROP DATABASE {database} WITH (FORCE)")
    return figures


def main() -> None:
    """Print one JSON document: median ms of CPU per command, client and server, by kind."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="any database of the server")
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--commands", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        _template(admin, args.database_url, args.orders)
        runs = [_run(admin, args.database_url, args.commands, args.batch) for _ in range(args.runs)]
        admin.execute(f"DROP DATABASE {TEMPLATE}")
    report = {
        kind.value: {
            side: round(statistics.median(run[kind.value][side] for run in runs), 3)
            for side in ("client_ms", "server_ms")
        }
        | {"runs": [{k: round(v, 3) for k, v in run[kind.value].items()} for run in runs]}
        for kind in KINDS
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
