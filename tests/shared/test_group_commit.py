"""Group commit, on both engines: the writes waiting in a process share one transaction,
and each keeps the contract of a transaction of its own (all or nothing, nothing reported
before its COMMIT returned)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest

from shared import access
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.errors import InvalidInput, Unavailable
from shared.foundation import Foundation
from shared.store import Store, Tx
from shared.store.group_commit import GroupCommit
from tests.conftest import wait_until
from tests.factories import order_doc
from tests.shared.test_foundation import JOBCENTRE, key_of


def _note(name: str) -> Callable[[Tx], str]:
    """A write that leaves a trace: one row in ``follows``, named ``name``."""

    def work(tx: Tx) -> str:
        tx.execute(
            "INSERT INTO follows (organisation, caseworker, target_type, target, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (JOBCENTRE, name, "order", "1", "2026-12-06T00:00:00+00:00"),
        )
        return name

    return work


def _noted(store: Store) -> list[str]:
    rows = store.connection().execute("SELECT caseworker FROM follows ORDER BY caseworker")
    return [str(row[0]) for row in rows.fetchall()]


def _in_threads(group: GroupCommit, works: list[Callable[[Tx], Any]]) -> list[Any]:
    """Run each work from a thread of its own; each thread's result or exception."""
    outcomes: list[Any] = [None] * len(works)

    def run(index: int) -> None:
        try:
            outcomes[index] = group.run(works[index])
        except BaseException as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


@contextmanager
def _queued_behind_a_held_leader(
    group: GroupCommit, followers: list[Callable[[Tx], Any]]
) -> Iterator[list[Any]]:
    """A leader holds its transaction until ``followers`` all wait for the next batch."""
    release = threading.Event()

    def held(tx: Tx) -> str:
        release.wait(30)
        return _note("leader")(tx)

    outcomes: list[Any] = []
    leader = threading.Thread(target=lambda: outcomes.append(group.run(held)))
    leader.start()
    wait_until(lambda: group._leading, 10, "the leader to start its batch")
    followed: list[Any] = []
    runner = threading.Thread(target=lambda: followed.extend(_in_threads(group, followers)))
    runner.start()
    wait_until(lambda: len(group._waiting) == len(followers), 10, "the followers to queue")
    release.set()
    leader.join(30)
    runner.join(30)
    assert outcomes == ["leader"]
    yield followed


def test_writes_waiting_together_share_one_transaction(any_store: Store) -> None:
    group = GroupCommit(any_store)
    names = [f"f{i:02d}" for i in range(12)]
    with _queued_behind_a_held_leader(group, [_note(n) for n in names]) as outcomes:
        assert outcomes == names
    assert _noted(any_store) == sorted(["leader", *names])
    assert (group.batches, group.writes) == (2, 13)  # the leader alone, then all twelve


def test_a_batch_is_never_larger_than_its_bound(any_store: Store) -> None:
    group = GroupCommit(any_store, max_batch=5)
    names = [f"f{i:02d}" for i in range(12)]
    with _queued_behind_a_held_leader(group, [_note(n) for n in names]) as outcomes:
        assert outcomes == names
    assert (group.batches, group.writes) == (1 + 3, 13)  # 5 + 5 + 2 after the leader


def test_a_failing_write_rolls_back_alone(any_store: Store) -> None:
    group = GroupCommit(any_store)

    def half_then_fail(tx: Tx) -> None:
        _note("half")(tx)
        raise InvalidInput("title: too long", field="title")

    works = [_note("a"), half_then_fail, _note("b")]
    with _queued_behind_a_held_leader(group, works) as outcomes:
        assert outcomes[0] == "a" and outcomes[2] == "b"
        assert isinstance(outcomes[1], InvalidInput)
    assert _noted(any_store) == ["a", "b", "leader"]


def test_a_failing_write_alone_in_its_batch_is_rolled_back(any_store: Store) -> None:
    group = GroupCommit(any_store)

    def half_then_fail(tx: Tx) -> None:
        _note("half")(tx)
        raise InvalidInput("title: too long", field="title")

    with pytest.raises(InvalidInput, match="too long"):
        group.run(half_then_fail)
    assert group.run(_note("after")) == "after"
    assert _noted(any_store) == ["after"]
    assert (group.batches, group.writes) == (2, 2)


class _CommitFails:
    """The store, but every COMMIT fails (a lost connection, a full disk)."""

    def __init__(self, store: Store) -> None:
        self.inner = store

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with self.inner.write() as tx:
            yield tx
            raise Unavailable("the store is unavailable (COMMIT failed); retry")


def test_when_commit_fails_every_write_of_the_batch_fails_and_none_happened(
    any_store: Store,
) -> None:
    group = GroupCommit(cast(Store, _CommitFails(any_store)))
    outcomes = _in_threads(group, [_note(f"f{i}") for i in range(6)])
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes), outcomes
    assert _noted(any_store) == []
    assert group.writes == 0


def test_an_interrupted_leader_fails_its_batch_as_unavailable(any_store: Store) -> None:
    group = GroupCommit(any_store)
    release = threading.Event()

    def interrupted(tx: Tx) -> None:
        release.wait(30)
        _note("interrupted")(tx)
        raise KeyboardInterrupt  # as a time limit or a second signal arrives

    caught: list[BaseException] = []

    def lead() -> None:
        try:
            group.run(interrupted)
        except BaseException as error:
            caught.append(error)

    leader = threading.Thread(target=lead)
    leader.start()
    wait_until(lambda: group._leading, 10, "the leader to start")
    # The leader's batch is only its own write; the ones queued behind go in the next.
    release.set()
    leader.join(30)
    assert [type(error) for error in caught] == [KeyboardInterrupt]
    assert _noted(any_store) == []
    # The group is not stuck: the next write leads and commits.
    assert group.run(_note("after")) == "after"
    assert _noted(any_store) == ["after"]


def test_a_secret_made_in_a_rolled_back_write_is_not_remembered(any_store: Store) -> None:
    made: list[bytes] = []

    def make_then_fail() -> None:
        with any_store.write() as tx:
            made.append(access.foundation_secret(tx, "test_secret"))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        make_then_fail()
    with any_store.write() as tx:
        kept = access.foundation_secret(tx, "test_secret")
    assert [kept] != made  # the first never existed
    with any_store.write() as tx:
        assert access.foundation_secret(tx, "test_secret") == kept


def test_concurrent_deliveries_of_one_command_apply_it_once(any_store: Store) -> None:
    foundation = Foundation(any_store)
    key = key_of(foundation, JOBCENTRE)
    envelope = new_envelope(
        CommandKind.REGISTER_ORDER, JOBCENTRE, {"order": order_doc(title="Én gang")}, key=key
    )
    others = [
        new_envelope(
            CommandKind.REGISTER_ORDER, JOBCENTRE, {"order": order_doc(title=f"Anden {i}")}, key=key
        )
        for i in range(4)
    ]
    replies: list[dict[str, Any]] = []
    lock = threading.Lock()

    def deliver(e: Any) -> None:
        reply = foundation.handle(e)
        with lock:
            replies.append(reply)

    threads = [threading.Thread(target=deliver, args=(e,)) for e in [envelope] * 6 + others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    mine = [r for r in replies if r["command_id"] == envelope.command_id]
    assert len(mine) == 6 and all(r == mine[0] for r in mine) and mine[0]["ok"]
    titles = [
        str(row[0])
        for row in any_store.connection().execute("SELECT title FROM orders ORDER BY title")
    ]
    assert titles == ["Anden 0", "Anden 1", "Anden 2", "Anden 3", "Én gang"]
    ledger = any_store.connection().execute(
        "SELECT COUNT(*) FROM commands WHERE command_id = ?", (envelope.command_id,)
    )
    assert ledger.fetchone()[0] == 1
