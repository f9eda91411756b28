"""The SQLite store's writers of one host queue on a file lock (shared/store/file_lock.py):
held for exactly a write transaction, released when its holder dies however it dies, and
enough on its own that writers of several processes never meet SQLite's busy handler."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from shared.store.file_lock import ProcessLock
from shared.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(120)


def lock_file(db: Path) -> Path:
    return db.with_name(db.name + ".write.lock")


def taken_by_someone(path: Path) -> bool:
    """Whether another open file description holds the lock (tried without waiting)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_is_held_for_exactly_a_write_transaction(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = SqliteStore(db)
    try:
        assert not taken_by_someone(lock_file(db))
        with store.write() as tx:
            tx.execute("CREATE TABLE counter (n INTEGER)")
            assert taken_by_someone(lock_file(db))
        assert not taken_by_someone(lock_file(db))
        with pytest.raises(RuntimeError), store.write():
            raise RuntimeError("the write fails")
        assert not taken_by_someone(lock_file(db)), "a failed write must let go too"
    finally:
        store.close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from shared.store.sqlite import SqliteStore
    store = SqliteStore(Path(sys.argv[1]))
    with store.write() as tx:
        tx.execute("INSERT INTO counter VALUES (1)")
        print("holding", flush=True)
        time.sleep(600)
    """
)


def test_a_writer_killed_while_holding_it_blocks_nobody(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = SqliteStore(db, busy_timeout_ms=5_000)
    try:
        with store.write() as tx:
            tx.execute("CREATE TABLE counter (n INTEGER)")
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert holder.stdout is not None and holder.stdout.readline() == b"holding\n"
        assert taken_by_someone(lock_file(db))
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        holder.stdout.close()
        with store.write() as tx:  # would hang for ever if the lock outlived its holder
            tx.execute("INSERT INTO counter VALUES (2)")
        rows = store.connection().execute("SELECT n FROM counter").fetchall()
        assert [row[0] for row in rows] == [2], "the killed writer's transaction is gone"
    finally:
        store.close()


def _count_up(db: str, times: int) -> None:
    # A busy timeout of 1 ms: a writer that met SQLite's busy handler would fail at once.
    store = SqliteStore(Path(db), busy_timeout_ms=1, migrate=False)
    try:
        for _ in range(times):
            with store.write() as tx:
                tx.execute("UPDATE counter SET n = n + 1")
    finally:
        store.close()


@pytest.mark.parametrize("processes", [pytest.param(2, id="two"), pytest.param(4, id="four")])
def test_writers_of_several_processes_queue_without_the_busy_handler(
    tmp_path: Path, processes: int
) -> None:
    db = tmp_path / "store.db"
    store = SqliteStore(db)
    try:
        with store.write() as tx:
            tx.execute("CREATE TABLE counter (n INTEGER)")
            tx.execute("INSERT INTO counter VALUES (0)")
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=_count_up, args=(str(db), 300)) for _ in range(processes)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(100)
        # A "database is locked" in any of them would end it with a non-zero exit code.
        assert [worker.exitcode for worker in workers] == [0] * processes
        total = store.connection().execute("SELECT n FROM counter").fetchone()[0]
        assert total == 300 * processes
    finally:
        store.close()


def test_a_forked_child_competes_for_the_lock_instead_of_sharing_it(tmp_path: Path) -> None:
    lock = ProcessLock(tmp_path / "w.lock")
    with lock.held():
        child = os.fork()
        if child == 0:  # pragma: no cover - the child reports through its exit code
            try:
                fd = lock._descriptor()
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os._exit(0)  # the parent's lock kept it out: as it should
            os._exit(1)
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    deadline = time.monotonic() + 5
    while taken_by_someone(tmp_path / "w.lock") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not taken_by_someone(tmp_path / "w.lock")
    lock.close()
