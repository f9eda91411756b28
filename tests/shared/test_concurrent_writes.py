"""Hosts writing at once: each command applied once, no lost update, event seq gap-free.

Every "host" here is a store of its own (its own connections) with a foundation of its
own, on one database; on PostgreSQL their write transactions run side by side, on SQLite
one after the other. The outcome must be the same.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from shared import eventlog
from shared.commands import CommandKind
from shared.context import Context
from shared.events import EventType
from shared.foundation import Foundation
from shared.models import Principal
from shared.store import Store, load_order, open_url
from tests.factories import CPR_1
from tests.shared.test_foundation import JOBCENTRE, OTHER_JOBCENTRE, call, key_of, ok, register
from tests.shared.test_foundation_batches import signed

K = CommandKind


def _hosts(url: str, count: int) -> list[Foundation]:
    """``count`` foundations on one database, each on a store of its own."""
    return [Foundation(open_url(url)) for _ in range(count)]


def _close(hosts: list[Foundation]) -> None:
    for host in hosts:
        host.store.close()


def _at_once(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run ``jobs`` in threads released together; their results (or exceptions), in order."""
    start = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = jobs[index]()
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def _count(host: Foundation, sql: str, params: tuple[Any, ...] = ()) -> int:
    return int(host.store.connection().execute(sql, params).fetchone()[0])


def test_one_command_id_sent_to_two_hosts_at_once_is_applied_once(store_url: str) -> None:
    hosts = _hosts(store_url, 2)
    try:
        order = register(hosts[0])
        for host in hosts:
            key_of(host, JOBCENTRE)
        for attempt in range(5):
            command_id = f"same-{attempt:06d}"
            # Inactivate, reactivate, ...: applied twice, the second would be refused.
            status = "inactivated" if attempt % 2 == 0 else "processing"
            payload = {"order_id": order["id"], "status": status}
            replies = _at_once(
                [
                    partial(call, host, JOBCENTRE, K.CHANGE_ORDER_STATUS, payload, command_id)
                    for host in hosts
                ]
            )
            assert replies[0] == replies[1], "both deliveries get the one reply"
            assert replies[0]["ok"], replies[0]
        final = ok(hosts[1], JOBCENTRE, K.GET_ORDER, {"order_id": order["id"]})
        assert final["version"] == 6, "five commands, each applied once"
        assert (
            _count(hosts[0], "SELECT COUNT(*) FROM events WHERE order_id = ?", (order["id"],)) == 6
        )
    finally:
        _close(hosts)


def test_changes_without_a_version_from_two_hosts_both_apply_none_lost(store_url: str) -> None:
    hosts = _hosts(store_url, 2)
    try:
        order = register(hosts[0])
        for host in hosts:
            key_of(host, JOBCENTRE)
            key_of(host, OTHER_JOBCENTRE)
        replies = _at_once(
            [
                lambda: call(
                    hosts[0],
                    JOBCENTRE,
                    K.CHANGE_ORDER_STATUS,
                    {"order_id": order["id"], "status": "inactivated"},
                ),
                lambda: call(hosts[1], OTHER_JOBCENTRE, K.TAKE_ORDER, {"order_id": order["id"]}),
            ]
        )
        assert [reply["ok"] for reply in replies] == [True, True], replies
        assert sorted(reply["result"]["version"] for reply in replies) == [2, 3]
        final = ok(hosts[1], JOBCENTRE, K.GET_ORDER, {"order_id": order["id"]})
        assert (final["version"], final["status"]) == (3, "inactivated")
        assert final["processing_by"] == [JOBCENTRE, OTHER_JOBCENTRE], "neither change lost"
    finally:
        _close(hosts)


def test_one_person_placed_on_one_order_by_two_hosts_at_once_is_placed_once(
    store_url: str,
) -> None:
    hosts = _hosts(store_url, 2)
    try:
        order = register(hosts[0])
        ok(hosts[0], OTHER_JOBCENTRE, K.TAKE_ORDER, {"order_id": order["id"]})
        for host in hosts:
            key_of(host, JOBCENTRE)
            key_of(host, OTHER_JOBCENTRE)
        placement = {"order_id": order["id"], "cpr": CPR_1, "referral": True}
        replies = _at_once(
            [
                lambda: call(hosts[0], JOBCENTRE, K.REGISTER_PLACEMENT, placement),
                lambda: call(hosts[1], OTHER_JOBCENTRE, K.REGISTER_PLACEMENT, placement),
            ]
        )
        outcomes = sorted("ok" if reply["ok"] else reply["error"]["code"] for reply in replies)
        assert outcomes == ["ok", "validation_error"], replies
        refused = next(reply for reply in replies if not reply["ok"])
        assert refused["error"]["field"] == "cpr"
        assert (
            _count(hosts[1], "SELECT COUNT(*) FROM placements WHERE order_id = ?", (order["id"],))
            == 1
        )
    finally:
        _close(hosts)


def test_event_seq_stays_gap_free_with_four_writers_committing_after_random_delays(
    store_url: str,
) -> None:
    """Writers that append their events and then take a while to commit (a slow network,
    a busy host): a reader must never see a seq before every lower one."""
    hosts = _hosts(store_url, 4)
    stores: list[Store] = [host.store for host in hosts]
    order = load_order(stores[0].connection(), register(hosts[0])["id"])
    stop = threading.Event()
    holes: list[list[int]] = []
    errors: list[BaseException] = []
    per_writer = 12

    def reader() -> None:
        conn = stores[0].connection()
        while not stop.is_set():
            seqs = [int(row[0]) for row in conn.execute("SELECT seq FROM events ORDER BY seq")]
            if seqs != list(range(1, len(seqs) + 1)):
                holes.append(seqs)

    def writer(index: int) -> None:
        chance = random.Random(index)
        try:
            for _ in range(per_writer):
                with stores[index].write() as tx:
                    ctx = Context(tx, Principal("system", ""), datetime.now(UTC))
                    for _ in range(chance.randint(1, 3)):
                        eventlog.record(ctx, order, EventType.ORDER_UPDATED)
                    time.sleep(chance.uniform(0, 0.02))
        except BaseException as error:
            errors.append(error)

    watching = threading.Thread(target=reader)
    watching.start()
    try:
        results = _at_once([lambda index=index: writer(index) for index in range(4)])
    finally:
        stop.set()
        watching.join(10)
    try:
        assert results == [None] * 4
        assert errors == []
        assert holes == []
        rows = stores[1].connection().execute("SELECT seq, header FROM events ORDER BY seq")
        seqs = []
        for seq, header in rows:
            seqs.append(int(seq))
            assert f'"seq":{seq},' in header, "the header names the seq the row has"
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(seqs) >= 1 + 4 * per_writer
    finally:
        _close(hosts)


def test_a_large_batch_in_parts_answers_each_command_in_place_and_keeps_each_orders_order(
    any_store: Store,
) -> None:
    """On PostgreSQL a batch of 33 is applied as four transactions at once; the answers
    come back in the batch's order, and the commands on one order apply in that order."""
    foundation = Foundation(any_store)
    orders = [register(foundation)["id"] for _ in range(4)]
    batch = []
    for step in range(8):
        status = "inactivated" if step % 2 == 0 else "processing"
        batch += [
            signed(foundation, K.CHANGE_ORDER_STATUS, {"order_id": order_id, "status": status})
            for order_id in orders
        ]
    batch.insert(
        5, signed(foundation, K.CHANGE_ORDER_STATUS, {"order_id": 999_999, "status": "inactivated"})
    )
    outcomes = foundation.answer_writes(batch)
    replies = [outcome.reply for outcome in outcomes if not isinstance(outcome, Exception)]
    assert len(replies) == len(batch), outcomes
    assert [reply["command_id"] for reply in replies] == [e.command_id for e in batch]
    assert replies[5]["error"]["code"] == "not_found", "one refusal, in its place"
    del replies[5]
    for place, reply in enumerate(replies):
        order_id = orders[place % 4]
        before = place // 4
        assert reply["ok"], reply
        assert (reply["result"]["id"], reply["result"]["version"]) == (order_id, 2 + before)
