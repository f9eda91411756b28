"""The SQLite store's files are the foundation's alone: mode 0600 in a 0700 folder.

The store holds every placement's CPR, the foundation's own secrets and (for protocol
version 1) the organisations' wrapped signing secrets, so no other user of the host may
read it, whatever the process's umask. A new store's folder is made 0700 and its file
0600 before SQLite opens it; SQLite gives the ``-wal``, ``-shm`` and ``-journal`` files the
mode of the database file. An existing file that other users could read is set to 0600,
and the fix is logged: an installation from before this rule is closed at its next start.
An existing folder is not changed (it may be shared, such as ``/var/lib``), but a
world-writable one without the sticky bit is refused: anyone could swap the files.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from shared.errors import Unavailable

#: Mode of every file of the store.
FILE_MODE = 0o600
#: Mode of a folder the store creates.
FOLDER_MODE = 0o700
#: Files SQLite keeps beside the database file.
COMPANIONS = ("-wal", "-shm", "-journal")

log = logging.getLogger("jobordre.store")


def private_folder(folder: Path) -> None:
    """Create ``folder`` (0700) if it is missing; refuse one anyone may write into."""
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        os.chmod(folder, FOLDER_MODE)
        return
    mode = folder.stat().st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise Unavailable(
            f"{folder}: any user of this host may replace files in this folder (mode "
            f"{stat.S_IMODE(mode):04o}); keep the store in a folder of its own: "
            f"`chmod 700 {folder}`, or set JOBORDRE_DB to a path in one"
        )


def private_file(path: Path) -> None:
    """Make ``path`` exist with mode 0600; a wider existing mode is narrowed and logged."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        narrow(path)
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def narrow(path: Path) -> None:
    """Set an existing file other users could read or write to 0600, and say so."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, FILE_MODE)
        log.warning(
            "%s was mode %04o, readable by other users of this host; set to %04o",
            path,
            mode,
            FILE_MODE,
        )


def private_database(path: Path) -> None:
    """The database file, its folder and the files SQLite keeps beside it."""
    private_folder(path.parent)
    private_file(path)
    for suffix in COMPANIONS:
        narrow(path.with_name(path.name + suffix))
