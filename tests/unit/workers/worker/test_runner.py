"""The worker's look for writers stuck mid-transaction (workers/worker/runner.py): it asks
the store at its interval, says what it ended, outlives a failed look, and does nothing
where the engine has no such writers. A fake store: the query itself is tested against a
real PostgreSQL in tests/shared/test_postgres_frozen_writer.py."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from shared.errors import Unavailable
from shared.store.sqlite import SqliteStore
from workers.worker.runner import end_stuck_writers_forever


class FakeStore:
    """Answers each look with the next of ``answers`` (a list of pids, or an error)."""

    def __init__(self, interval_ms: int, answers: list[list[int] | Exception]) -> None:
        self.stuck_writer_check_ms = interval_ms
        self.answers = answers
        self.looks = 0
        self.done = threading.Event()

    def end_stuck_writers(self) -> list[int]:
        self.looks += 1
        answer = self.answers[min(self.looks, len(self.answers)) - 1]
        if self.looks >= len(self.answers):
            self.done.set()
        if isinstance(answer, Exception):
            raise answer
        return answer


def _run(store: FakeStore) -> threading.Event:
    stop = threading.Event()
    thread = threading.Thread(target=end_stuck_writers_forever, args=(store, stop), daemon=True)
    thread.start()
    assert store.done.wait(5), "the loop stopped looking"
    stop.set()
    thread.join(5)
    assert not thread.is_alive(), "the loop did not end when told to"
    return stop


def test_each_look_that_ended_sessions_says_which(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore(10, [[], [4242, 4343], []])
    with caplog.at_level(logging.WARNING, logger="jobordre.worker"):
        _run(store)
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1, said
    assert "ended 2 database session(s) stuck mid-transaction" in said[0]
    assert "[4242, 4343]" in said[0]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(Unavailable("PostgreSQL is away"), id="database-away"),
        pytest.param(RuntimeError("a bug"), id="anything-else"),
    ],
)
def test_a_failed_look_is_said_and_the_next_one_comes(
    caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    store = FakeStore(10, [error, [7]])
    with caplog.at_level(logging.WARNING, logger="jobordre.worker"):
        _run(store)
    said = [record.getMessage() for record in caplog.records]
    assert "cannot look for writers stuck mid-transaction" in said[0]
    assert store.looks == 2
    assert "ended 1 database session(s)" in said[1]


def test_the_looks_come_at_the_store_s_interval() -> None:
    store = FakeStore(100, [[], [], []])
    started = time.monotonic()
    _run(store)
    assert time.monotonic() - started >= 0.3


def test_an_engine_without_stuck_writers_is_not_looked_at(tmp_path: Path) -> None:
    sqlite = SqliteStore(tmp_path / "store.db")
    try:
        assert sqlite.stuck_writer_check_ms == 0
        assert sqlite.end_stuck_writers() == []
        stop = threading.Event()
        thread = threading.Thread(target=end_stuck_writers_forever, args=(sqlite, stop))
        thread.start()
        thread.join(2)
        assert not thread.is_alive(), "the loop returns at once where there is nothing to look for"
    finally:
        sqlite.close()
