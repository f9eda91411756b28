"""The SQLite store's files are the foundation's alone, whatever the umask (issue 26, HIGH 2).

A review found ``jobordre.db`` and its ``-wal`` at 0644 in a 0755 folder, and user
``nobody`` read every organisation's signing secret out of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import keys
from shared.clock import utc_now
from shared.errors import Unavailable
from shared.store import SqliteStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[pytest.param(0o022, id="umask-022"), pytest.param(0, id="umask-000")])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def test_a_new_store_its_wal_and_its_folder_are_private_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    path = tmp_path / "home" / "jobordre.db"
    store = SqliteStore(path)
    with store.write() as conn:
        keys.create(conn, "jobcentre:751", utc_now())
    files = [path, path.with_name("jobordre.db-wal"), path.with_name("jobordre.db-shm")]
    assert all(f.exists() for f in files)
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert mode(path.parent) == 0o700
    # Every other file the store keeps there (locks, the secrets key) is private too.
    assert {f.name: mode(f) for f in path.parent.iterdir()} == {
        f.name: 0o600 for f in path.parent.iterdir()
    }
    store.close()


def test_another_user_of_the_host_cannot_read_the_store(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    store = SqliteStore(folder / "jobordre.db")
    with store.write() as conn:
        keys.create(conn, "jobcentre:751", utc_now())
    store.close()
    os.chmod(tmp_path, 0o755)  # pytest's own tmp folder must not be what stops nobody
    assert mode(folder / "jobordre.db") & 0o077 == 0
    if os.geteuid() == 0 and shutil.which("runuser"):
        read = subprocess.run(
            ["runuser", "-u", "nobody", "--", "cat", str(folder / "jobordre.db")],
            capture_output=True,
            check=False,
        )
        assert read.returncode != 0 and b"Permission denied" in read.stderr


def test_an_existing_store_readable_by_others_is_closed_and_the_fix_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobordre.db"
    SqliteStore(path).close()
    wal = path.with_name("jobordre.db-wal")
    wal.touch()
    os.chmod(path, 0o644)
    os.chmod(wal, 0o666)
    with caplog.at_level(logging.WARNING, logger="jobordre.store"):
        reopened = SqliteStore(path)
    assert (mode(path), mode(wal)) == (0o600, 0o600)
    reopened.close()
    said = [r.getMessage() for r in caplog.records]
    assert any(str(path) in m and "0644" in m and "0600" in m for m in said), said


def test_a_folder_anyone_may_write_into_is_refused_with_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    os.chmod(folder, 0o777)
    with pytest.raises(Unavailable, match=r"chmod 700") as refused:
        SqliteStore(folder / "jobordre.db")
    assert "JOBORDRE_DB" in refused.value.message
    assert not (folder / "jobordre.db").exists()
