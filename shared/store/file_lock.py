"""The SQLite store's write lock across the processes of one host: a ``flock`` on a file.

SQLite lets one writer in at a time, and a writer that finds the lock taken sleeps in its
busy handler (1, 2, 5, 10 … 100 ms between tries) instead of being woken when it frees.
Two worker processes' group-commit leaders alternate on that lock all the time under load,
and the one that lost slept through much of the other's transaction: in a 2 × 8 placement
run each process spent about a third of its time in that handler (docs/performance.md).
A kernel file lock wakes the next waiter the moment the holder lets go, so jobordre's
writers queue on it first and meet ``BEGIN IMMEDIATE`` only when it is free.

The kernel drops the lock when its holder dies, however it dies (``kill -9`` included),
so a crashed writer never leaves it taken. A waiter waits as long as the holder's
transaction lasts, which SQLite's busy timeout bounds when a writer that does not take
this lock (an older jobordre, the ``sqlite3`` shell) holds the database. Only processes
on the same host see each other's locks, as only they can share a SQLite file safely.
(Clients that make their signing key on first use queue on one too: workers/client/credentials.py.)
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ProcessLock:
    """An exclusive lock shared by every process that opens the same ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._guard = threading.Lock()
        #: (pid, descriptor): a forked child opens a file of its own, since a descriptor
        #: inherited across fork shares its parent's lock instead of competing for it.
        self._opened: tuple[int, int] | None = None

    def _descriptor(self) -> int:
        with self._guard:
            if self._opened is None or self._opened[0] != os.getpid():
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._opened = (os.getpid(), fd)
            return self._opened[1]

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block. One thread of a process at a time may call this
        (the store's thread lock sees to it): a flock is the process's, not the thread's."""
        fd = self._descriptor()
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks in the kernel, without the GIL
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close this process's descriptor (releasing the lock if it were held)."""
        with self._guard:
            if self._opened is not None and self._opened[0] == os.getpid():
                os.close(self._opened[1])
            self._opened = None
