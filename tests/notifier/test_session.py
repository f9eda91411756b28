"""One notifier per caseworker session, and what ``status`` reads from a running one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notifier.session import SessionLock, StateFile, session_paths, status
from notifier.tray import State, View
from shared.errors import AlreadyRunning

ME = "jobcentre:751"


def test_a_second_lock_for_the_same_caseworker_is_refused_with_the_holders_pid(
    tmp_path: Path,
) -> None:
    lock_path, _ = session_paths(tmp_path, ME, "kf1")
    # The holder is another process, as a second notifier would see it.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from notifier.session import SessionLock;"
         "lock = SessionLock(Path(sys.argv[1])); lock.acquire();"
         "print('held', flush=True); time.sleep(60)",
         str(lock_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(AlreadyRunning) as refused:
            SessionLock(lock_path).acquire()
        assert refused.value.pid == holder.pid
        assert SessionLock.held(lock_path) == holder.pid
        # Another caseworker on the same machine is not held back.
        other = SessionLock(session_paths(tmp_path, ME, "kf2")[0])
        other.acquire()
        other.release()
    finally:
        holder.kill()
        holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()
    # The kernel let go with the process: no stale lock.
    assert SessionLock.held(lock_path) is None
    mine = SessionLock(lock_path)
    mine.acquire()
    mine.release()


def test_status_reads_the_state_file_only_while_the_lock_is_held(tmp_path: Path) -> None:
    lock_path, state_path = session_paths(tmp_path, ME, "kf1")
    lock = SessionLock(lock_path)
    lock.acquire()
    state = StateFile(state_path, since="2026-12-07T13:00:00+00:00")
    state.update(
        View(State.PAUSED, last_title="Jobordre 42: Lager", last_at="2026-12-07T13:05:00+00:00")
    )
    assert os.stat(state_path).st_mode & 0o777 == 0o600
    assert status(tmp_path, ME, "kf1") == {
        "running": True,
        "pid": os.getpid(),
        "since": "2026-12-07T13:00:00+00:00",
        "state": "paused",
        "connected": False,
        "last_shown": {"title": "Jobordre 42: Lager", "at": "2026-12-07T13:05:00+00:00"},
    }
    lock.release()
    assert status(tmp_path, ME, "kf1")["running"] is False
    assert json.loads(state_path.read_text())["state"] == "paused"
    state.stop()
    assert not state_path.exists()
