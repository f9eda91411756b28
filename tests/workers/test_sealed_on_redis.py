"""No CPR in clear on Redis: queued commands, replies nobody collected, dead messages.

A reader of Redis sees every key and value. With no worker running (commands wait on the
queue), under load with a worker, after replies were left uncollected (``--no-wait``), and
after a command crashed into Dramatiq's dead-letter set: not one CPR in clear. The same
run checks ``--no-wait`` and ``jobordre result`` as an integrator uses them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from shared.identifiers import validate_cpr
from tests.conftest import System, wait_until
from tests.factories import order_doc
from tests.workers.test_personal_data import redis_dump

pytestmark = pytest.mark.integration

KBH = "jobcentre:101"
#: People placed in the run.
PEOPLE = [validate_cpr(f"{day:02d}0{month}851000") for month in range(1, 3) for day in range(1, 16)]


def assert_no_cpr(where: str, data: bytes) -> None:
    for cpr in PEOPLE:
        at = data.find(cpr.encode())
        assert at < 0, f"a CPR in clear in {where}: {data[max(0, at - 200) : at + 40]!r}"


def place(system: System, order_id: int, cpr: str, *extra: str) -> dict[str, str]:
    document: dict[str, str] = system.json(
        "placement",
        "register",
        str(order_id),
        "--cpr",
        "-",
        "--as",
        KBH,
        "--note",
        f"ringede {cpr[:2]}.",
        *extra,
        stdin=cpr + "\n",
    )
    return document


@pytest.mark.timeout(300)
def test_no_cpr_in_clear_on_redis_with_and_without_a_worker(
    bare_system: System, tmp_path: Path
) -> None:
    system = bare_system
    system.start_worker(JOBORDRE_MAX_RETRIES="1")
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc()))
    order = system.json("order", "register", "--file", str(path), "--as", KBH)
    system.stop_workers()

    # No worker: the commands wait on the queue, sealed.
    waiting = [place(system, order["id"], cpr, "--no-wait")["command_id"] for cpr in PEOPLE[:10]]
    assert_no_cpr("the queues, with no worker", redis_dump(system.redis.client()))

    # A worker applies them; nobody collects the replies.
    system.start_worker(JOBORDRE_MAX_RETRIES="1")
    result = system.json("result", waiting[-1], "--as", KBH, "--timeout-ms", "20000")
    assert result["placed_by"] == KBH and result["cpr"] == "**********"
    assert_no_cpr("the uncollected replies", redis_dump(system.redis.client()))

    # Under load: a reader dumps Redis again and again while placements go through.
    dumps: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        client = system.redis.client()
        while not done.wait(0.05):
            dumps.append(redis_dump(client))
        client.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for cpr in PEOPLE[10:20]:
            assert place(system, order["id"], cpr)["placed_by"] == KBH
    finally:
        done.set()
        thread.join(30)
    assert len(dumps) > 3
    for n, dump in enumerate(dumps):
        assert_no_cpr(f"Redis dump {n} under load", dump)

    # A command that keeps crashing ends in Dramatiq's dead-letter set (.XQ), sealed.
    with sqlite3.connect(system.db) as conn:
        conn.execute("UPDATE orders SET doc = '{}'")
    crashed = place(system, order["id"], PEOPLE[20], "--no-wait")["command_id"]
    wait_until(
        lambda: any(
            d["command_id"] == crashed
            for d in system.json("dead", "list", "--limit", "100")["dead_letters"]
        ),
        60,
        "the crashing command to be set aside",
    )
    client = system.redis.client()
    assert any(key.endswith(b".XQ.msgs") and client.hlen(key) for key in client.keys("*"))
    assert_no_cpr("Redis with a dead message", redis_dump(client))
    assert_no_cpr("the worker log", system.worker_logs())


def test_result_is_the_callers_own(system: System, tmp_path: Path) -> None:
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc()))
    sent = system.json("order", "register", "--file", str(path), "--as", KBH, "--no-wait")
    mine = system.json("result", sent["command_id"], "--as", KBH, "--timeout-ms", "20000")
    assert mine["registered_by"] == KBH
    other = system.cli("result", sent["command_id"], "--as", "jobcentre:751", "--json")
    assert other.code == 4 and json.loads(other.out)["error"]["code"] == "not_found"
    unknown = system.cli("result", "no-such-command", "--as", KBH, "--json")
    assert unknown.code == 4
    read = system.cli("order", "get", str(mine["id"]), "--as", KBH, "--no-wait", "--json")
    assert read.code == 2 and json.loads(read.out)["error"]["field"] == "no_wait"
