"""WAL checkpoints after the write lock (shared/store/sqlite_checkpoint.py), on a real
SQLite file: a COMMIT no longer copies the WAL back while it holds the lock; the batch's
writer does, once the lock is free, when enough pages wait."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.store.group_commit import GroupCommit
from shared.store.interface import Tx
from shared.store.sqlite import SqliteStore
from shared.store.sqlite_checkpoint import CHECKPOINT_PAGES, Checkpoints

pytestmark = pytest.mark.timeout(60)

#: Bytes of one row that takes about one page of its own.
ROW_BYTES = 3_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "store.db", migrate=False)
    with opened.write() as tx:
        tx.execute("CREATE TABLE filler (data BLOB)")
    opened.after_commit()
    yield opened
    opened.close()


def fill(tx: Tx, rows: int) -> int:
    """Insert ``rows`` rows of about a page each; their number."""
    tx.executemany("INSERT INTO filler VALUES (randomblob(?))", [(ROW_BYTES,)] * rows)
    return rows


def wal_frames(path: Path) -> int:
    """Frames in a WAL file written from its start: its size less the header, per frame."""
    size = path.with_name(path.name + "-wal").stat().st_size
    return (size - 32) // (4096 + 24)


def test_the_pages_waiting_are_read_from_the_wal_index(store: SqliteStore) -> None:
    store.connection().raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL emptied
    with store.write() as tx:
        fill(tx, 100)
    assert store.checkpoints.waiting_pages() == wal_frames(store.path) > 100


def test_a_commit_leaves_the_wal_to_the_checkpoint_after_the_lock(store: SqliteStore) -> None:
    with store.write() as tx:
        fill(tx, 2 * CHECKPOINT_PAGES)
    waiting = store.checkpoints.waiting_pages()
    assert waiting > 2 * CHECKPOINT_PAGES, "COMMIT did not checkpoint (SQLite's own would have)"
    held_at_checkpoint: list[bool] = []
    checkpoint = store.checkpoints.after_commit

    def noting(conn: object) -> None:
        held_at_checkpoint.append(store._writer.locked())
        checkpoint(conn)  # type: ignore[arg-type]

    store.checkpoints.after_commit = noting  # type: ignore[method-assign]
    writes = GroupCommit(store)
    assert writes.run(lambda tx: fill(tx, 10)) == 10
    assert held_at_checkpoint == [False], "the checkpoint ran once, with the write lock free"
    assert store.checkpoints.runs == 1
    assert store.checkpoints.waiting_pages() == 0, "every page copied back"


def test_few_pages_waiting_make_no_checkpoint(store: SqliteStore) -> None:
    with store.write() as tx:
        fill(tx, 20)
    assert 0 < store.checkpoints.waiting_pages() < CHECKPOINT_PAGES
    store.after_commit()
    assert store.checkpoints.runs == 0


@pytest.mark.parametrize(
    "trouble",
    [
        pytest.param("no-wal-index", id="no-wal-index"),
        pytest.param("closed-connection", id="closed-connection"),
    ],
)
def test_a_checkpoint_that_cannot_run_raises_nothing(
    store: SqliteStore, tmp_path: Path, trouble: str
) -> None:
    with store.write() as tx:
        fill(tx, 2 * CHECKPOINT_PAGES)
    if trouble == "no-wal-index":
        checkpoints = Checkpoints(tmp_path / "nothing-here.db")
        assert checkpoints.waiting_pages() == 0
        checkpoints.after_commit(store.connection().raw)
        assert checkpoints.runs == 0
    else:
        conn = store.connection().raw
        store.checkpoints.waiting_pages()  # the WAL index is open
        conn.close()
        store.checkpoints.after_commit(conn)
        assert store.checkpoints.runs == 0
