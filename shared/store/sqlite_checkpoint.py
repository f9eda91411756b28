"""WAL checkpoints after the write lock, not under it.

SQLite copies the WAL back into the database file (a checkpoint) from inside the COMMIT
that takes the WAL past ``wal_autocheckpoint`` pages: with a batch of write commands
committing hundreds of pages, that was nearly every COMMIT, and the copy ran while the
committing process held the store's write lock, so every other writer waited for it
(docs/performance.md). Here the writer that finds enough frames waiting after its
COMMIT copies them once it has let go of the lock (``GroupCommit`` calls
``Store.after_commit`` when a batch's writers have their results), as a ``PASSIVE``
checkpoint, which never blocks the next writer. SQLite's own checkpoint stays as a
safety net at :data:`SAFETY_NET_PAGES`, for a WAL these cannot keep short.

How many frames wait is read from the WAL-index header in the ``-shm`` file
(https://www.sqlite.org/walformat.html, section 2.1): ``mxFrame`` (the last valid frame,
at byte 16) minus ``nBackfill`` (frames already copied, at byte 96), both 32-bit in the
machine's byte order. The read takes no lock; a stale figure only moves a checkpoint by
one commit.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
from pathlib import Path

logger = logging.getLogger("jobordre.store")

#: Frames (pages) waiting in the WAL that make a writer checkpoint after its COMMIT:
#: SQLite's default ``wal_autocheckpoint``.
CHECKPOINT_PAGES = 1_000
#: SQLite's own checkpoint inside COMMIT, kept for a WAL that outgrows the checkpoints
#: after the lock (pages of 4 KiB: about 40 MB).
SAFETY_NET_PAGES = 10_000

_U32 = struct.Struct("=I")
#: Byte offsets in the WAL-index header.
_MX_FRAME_AT = 16
_BACKFILL_AT = 96


class Checkpoints:
    """Decides, after a COMMIT, whether the WAL is long enough to copy back, and does it."""

    def __init__(self, path: Path) -> None:
        self.shm = path.with_name(path.name + "-shm")
        self._fd: int | None = None
        self._lock = threading.Lock()
        #: Checkpoints run after the lock (for tests and measurements).
        self.runs = 0

    def waiting_pages(self) -> int:
        """Frames in the WAL not yet copied into the database; 0 if there is no WAL index."""
        fd = self._open()
        if fd is None:
            return 0
        header = os.pread(fd, _BACKFILL_AT + 4, 0)
        if len(header) < _BACKFILL_AT + 4:
            return 0
        last: int = _U32.unpack_from(header, _MX_FRAME_AT)[0]
        copied: int = _U32.unpack_from(header, _BACKFILL_AT)[0]
        return max(last - copied, 0)

    def after_commit(self, conn: sqlite3.Connection) -> None:
        """Checkpoint on ``conn`` (outside any transaction) if enough frames wait.

        Never raises: the writes before it are committed whatever happens here, and a
        checkpoint missed is made by the next commit or SQLite's own safety net.
        """
        try:
            if self.waiting_pages() < CHECKPOINT_PAGES:
                return
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (OSError, sqlite3.Error) as error:
            # Another process checkpointing, say: the next COMMIT tries again.
            logger.debug("checkpoint after commit skipped: %s", error)
            return
        self.runs += 1

    def _open(self) -> int | None:
        if self._fd is None:
            with self._lock:
                if self._fd is None:
                    try:
                        self._fd = os.open(self.shm, os.O_RDONLY)
                    except FileNotFoundError:
                        return None
        return self._fd

    def close(self) -> None:
        """Close the ``-shm`` file descriptor, if open."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
