"""Measure what PostgreSQL's event-numbering lock costs, and what leaving it out breaks.

Run: ``.venv/bin/python -m workers.bench.measure.write_lock [--commands 600]``. In one
process, ``--commands`` order registrations (each one command: order row, event, audience,
ledger row) go through :class:`shared.foundation.Foundation` on a private PostgreSQL
cluster, from 1 thread and from 4 threads each with its own store (as 4 hosts), with the
write path as it is ("locked": events numbered under the advisory lock just before
COMMIT, docs/scaling-out-postgres.md) and with plain transactions that number events at
once with no lock ("unlocked"); SQLite in-process beside it. Without the lock, concurrent
writers allocate the same ``seq`` and fail. Not a
test: figures are reported.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.foundation import Foundation
from shared.store import Store, open_url, postgres
from tests.conftest import free_port
from tests.factories import order_doc
from tests.postgres_cluster import start_cluster
from tests.shared.test_foundation import JOBCENTRE, key_of


def _run(url: str, commands: int, hosts: int) -> dict[str, Any]:
    stores: list[Store] = [open_url(url) for _ in range(hosts)]
    foundations = [Foundation(store) for store in stores]
    key = key_of(foundations[0], JOBCENTRE)
    envelopes = [
        new_envelope(CommandKind.REGISTER_ORDER, JOBCENTRE, {"order": order_doc()}, key=key)
        for _ in range(commands)
    ]
    failures: list[str] = []

    def host(index: int) -> None:
        for envelope in envelopes[index::hosts]:
            try:
                reply = foundations[index].handle(envelope)
                if not reply["ok"]:
                    failures.append(reply["error"]["code"])
            except Exception as error:
                failures.append(type(error).__name__)

    started = time.perf_counter()
    threads = [threading.Thread(target=host, args=(i,)) for i in range(hosts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for store in stores:
        store.close()
    return {
        "per_s": round(commands / elapsed, 1),
        "failed": len(failures),
        "failures": sorted(set(failures)),
    }


def main() -> None:
    """Print one JSON document of figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=600)
    args = parser.parse_args()
    cluster = start_cluster(free_port())
    figures: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for hosts in (1, 4):
                figures[f"sqlite_{hosts}"] = _run(
                    str(Path(folder) / f"s{hosts}.db"), args.commands, hosts
                )
        original = postgres.PostgresStore.write
        for locked in (True, False):
            if not locked:

                def unlocked(self: postgres.PostgresStore) -> Any:
                    return self._transaction("BEGIN")

                postgres.PostgresStore.write = unlocked  # type: ignore[method-assign]
            for hosts in (1, 4):
                name = f"postgres_{'locked' if locked else 'unlocked'}_{hosts}"
                figures[name] = _run(cluster.fresh_database(), args.commands, hosts)
        postgres.PostgresStore.write = original  # type: ignore[method-assign]
    finally:
        cluster.stop()
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
