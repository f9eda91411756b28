"""One notifier per caseworker session, and what it tells ``jobordre notifier status``.

Both live beside the cursor, under ``<home>/notifier/`` (``JOBORDRE_HOME``), named by the
same digest of organisation and caseworker (ids can be names):

* ``notifier-<digest>.lock``: held with ``flock`` while a notifier runs. A second start
  cannot take it and says which process holds it; the kernel lets go when the process
  ends, however it ends, so a crash leaves no stale lock.
* ``notifier-<digest>.json`` (mode 0600), rewritten atomically whenever the tray's view
  changes: ``pid``, ``since`` (ISO 8601, UTC), ``state`` (``connected`` /
  ``reconnecting`` / ``paused``), ``connected``, ``last_shown`` (``{"title", "at"}`` or
  ``null``). :func:`status` trusts it only while the lock is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from notifier.cursor import caseworker_digest
from notifier.tray import View
from shared.errors import AlreadyRunning


def session_paths(home: Path, principal: str, caseworker: str) -> tuple[Path, Path]:
    """The lock file and the state file of ``caseworker`` of ``principal`` under ``home``."""
    digest = caseworker_digest(principal, caseworker)
    folder = home / "notifier"
    return folder / f"notifier-{digest}.lock", folder / f"notifier-{digest}.json"


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text(encoding="ascii").strip() or 0)
    except (OSError, ValueError):
        return 0


@dataclass
class SessionLock:
    """The lock of one running notifier; :meth:`acquire` or :class:`AlreadyRunning`."""

    path: Path
    _file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock for this process and write its pid in the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 held while running
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            pid = _read_pid(self.path)
            raise AlreadyRunning(f"a notifier already runs (pid {pid})", pid=pid) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let go (the file stays: removing it would race with a start taking it)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    @staticmethod
    def held(path: Path) -> int | None:
        """The pid of the notifier holding the lock at ``path``, or ``None`` if none does."""
        try:
            handle = open(path, encoding="ascii")  # noqa: SIM115 closed below
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_pid(path)
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None


def now_iso() -> str:
    """The current time in UTC, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class StateFile:
    """A :class:`~notifier.tray.Tray` that writes the view to a file for ``status``."""

    def __init__(self, path: Path, pid: int | None = None, since: str | None = None) -> None:
        self.path = path
        self.pid = pid or os.getpid()
        self.since = since or now_iso()

    def update(self, view: View) -> None:
        """Replace the file with ``view`` (a reader sees the old file or the new one)."""
        document: dict[str, Any] = {
            "pid": self.pid,
            "since": self.since,
            "state": view.state.value,
            "connected": view.connected,
            "last_shown": (
                {"title": view.last_title, "at": view.last_at} if view.last_title else None
            ),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = self.path.with_suffix(".tmp")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(document, out, ensure_ascii=False)
        os.replace(partial, self.path)

    def stop(self) -> None:
        """Remove the file: nothing runs any more."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def status(home: Path, principal: str, caseworker: str) -> dict[str, Any]:
    """Whether the caseworker's notifier runs and what it last reported: ``running``,
    ``pid``, ``since``, ``state``, ``connected``, ``last_shown`` (``None`` where unknown)."""
    lock, state = session_paths(home, principal, caseworker)
    pid = SessionLock.held(lock)
    report: dict[str, Any] = {
        "running": pid is not None,
        "pid": pid,
        "since": None,
        "state": None,
        "connected": False,
        "last_shown": None,
    }
    if pid is None:
        return report
    try:
        stored = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return report
    if isinstance(stored, dict):
        for key in ("since", "state", "connected", "last_shown"):
            if key in stored:
                report[key] = stored[key]
    return report
