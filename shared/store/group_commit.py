"""Group commit: the writes waiting in one process share one transaction.

Every write takes the store's one write lock (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's
advisory lock), so a process's threads write one after the other anyway. Each paying for
its own BEGIN, COMMIT and lock hand-off costs more than the work: instead, the first
thread that finds no transaction running becomes the *leader*, takes every write that is
waiting (up to :data:`MAX_BATCH`), applies each in its own ``SAVEPOINT`` inside ONE
transaction (a write alone in its batch needs none: its transaction is rolled back if it
fails), commits once, and hands each thread its result. Threads that arrived
meanwhile wait for that and the next leader takes them.

The contract each write keeps is that of its own transaction:

* **All or nothing per write.** A write that raises is rolled back to its savepoint (and
  only it); its thread gets the exception, the others commit.
* **Nothing is reported before it is durable.** A thread gets its result only after the
  COMMIT that made it durable returned. If BEGIN or COMMIT fails, or the leader is
  interrupted, every write of the batch gets :class:`shared.errors.Unavailable` (or the
  leader's own exception) and none of them happened: each will be retried as a whole.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from shared.errors import Unavailable
from shared.store.interface import Store, Tx

T = TypeVar("T")

#: Most writes one transaction carries. Bounded so that one COMMIT never waits for an
#: unbounded amount of work, and a batch's savepoints stay cheap.
MAX_BATCH = 64


class _Pending(Generic[T]):
    """One write waiting for its batch: the work, and then its outcome."""

    __slots__ = ("done", "error", "result", "wake", "work")

    def __init__(self, work: Callable[[Tx], T]) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None
        #: Set when the write is done, or when its thread is to lead the next batch. One
        #: event per waiting write: a commit wakes the threads it finished, not every
        #: waiter. A write whose thread leads at once never waits: it gets none (made
        #: under the lock its thread queues with, so a leader never meets one unmade).
        self.wake: threading.Event | None = None

    def set(self) -> None:
        """Wake the write's thread, if it waits."""
        if self.wake is not None:
            self.wake.set()


class _RolledBack(Exception):
    """The one write of a batch failed: its transaction is rolled back, not committed."""


def _apply_alone(tx: Tx, pending: _Pending[Any]) -> None:
    """A batch's only write, without a savepoint: its transaction stands in for one (two
    statements less), rolled back by :class:`_RolledBack` if the write raises."""
    try:
        pending.result = pending.work(tx)
    except Exception as error:
        pending.error = error
        raise _RolledBack from error


def _apply_each(tx: Tx, batch: list[_Pending[Any]]) -> None:
    """The writes of a batch, each in a savepoint of its own."""
    for pending in batch:
        try:
            with tx.savepoint():
                pending.result = pending.work(tx)
        except Exception as error:
            pending.error = error


class GroupCommit:
    """Runs write functions of many threads in shared transactions of ``store``."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Pending[Any]] = []
        self._leading = False
        #: Batches committed and writes in them, since start (for the benchmark's figures).
        self.batches = 0
        self.writes = 0

    def run(self, work: Callable[[Tx], T]) -> T:
        """Apply ``work`` inside a write transaction and return its result once committed.

        ``work`` may run in another thread (the batch's leader), inside a savepoint: it must
        use only the ``Tx`` it is given and keep no thread-local state. Its exception, if
        any, is raised here after its savepoint was rolled back.
        """
        pending: _Pending[T] = _Pending(work)
        with self._lock:
            self._waiting.append(pending)
            lead = not self._leading
            self._leading = True
            if not lead:
                pending.wake = threading.Event()
        if pending.wake is not None:
            # Woken when done, or when the leader handed over with this write still waiting.
            pending.wake.wait()
        if not pending.done:
            self._lead()
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _lead(self) -> None:
        """Apply batches until nothing waits, then step down (under the same lock that
        arrivals check, so none is left waiting without a leader)."""
        try:
            while True:
                with self._lock:
                    batch = self._waiting[: self.max_batch]
                    del self._waiting[: self.max_batch]
                    if not batch:
                        self._leading = False
                        return
                self._apply(batch)
        except BaseException:
            # The leader was interrupted: the next waiting thread leads on.
            with self._lock:
                if self._waiting:
                    self._waiting[0].set()
                else:
                    self._leading = False
            raise

    def _apply(self, batch: list[_Pending[Any]]) -> None:
        """One transaction for ``batch``; every entry is done when this returns or raises."""
        try:
            with self.store.write() as tx:
                if len(batch) == 1:
                    _apply_alone(tx, batch[0])
                else:
                    _apply_each(tx, batch)
        except _RolledBack:
            # The batch's one write failed and its transaction was rolled back: its error
            # is its outcome, as if its savepoint had been.
            pass
        except BaseException as error:
            # BEGIN or COMMIT failed, or the leader was interrupted: nothing of the batch
            # is durable. Its writes fail as a whole and are retried as a whole.
            failed = (
                error
                if isinstance(error, Exception)
                else Unavailable("the write was interrupted before it committed; retry it")
            )
            for pending in batch:
                pending.result = None
                pending.error = failed
            self._finish(batch)
            if not isinstance(error, Exception):
                raise
            return
        self.batches += 1
        self.writes += len(batch)
        self._finish(batch)
        # Out of the write lock, with the batch answered (a WAL checkpoint on SQLite).
        self.store.after_commit()

    @staticmethod
    def _finish(batch: list[_Pending[Any]]) -> None:
        for pending in batch:
            pending.done = True
            pending.set()
