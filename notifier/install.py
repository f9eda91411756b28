"""``jobordre notifier install`` / ``uninstall``: what a Linux desktop starts at login.

:func:`install` writes, under ``$XDG_CONFIG_HOME`` (default ``~/.config``):

* ``jobordre/notifier.key``: a copy of the caseworker's key (mode 0600, folder 0700). The
  key to give is one scoped to notifying (``jobordre keys create --scope notify``), so a
  desktop never holds a key that can change orders; any key file is taken.
* ``jobordre/notifier.json`` (0600): the caseworker, the organisation, and the
  ``JOBORDRE_*`` settings of the installing shell (Redis URL, order URL, language, home),
  with ``JOBORDRE_KEY_FILE`` pointing at the copy. ``jobordre notifier start`` runs from it.
* ``autostart/jobordre-notifier.desktop``: the XDG autostart entry every freedesktop
  session (GNOME, KDE, Xfce, LXQt, ...) starts at login.
* ``systemd/user/jobordre-notifier.service``: a systemd user unit bound to
  ``graphical-session.target``, for sessions managed by systemd; written, not enabled (the
  autostart entry already starts the notifier; enable one or the other). A second start is
  refused by the session lock with exit code :data:`ALREADY_RUNNING_EXIT`, which the unit
  does not restart on.

:func:`uninstall` stops a running notifier and removes all of it, plus the notifier's own
cursor, lock and state files of that caseworker, and every folder left empty. Windows and
macOS are not covered: there, start ``jobordre notifier --caseworker ID --as P`` from the
platform's own login items (not tested here).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notifier.backend import icon_path
from notifier.cursor import CursorFile
from notifier.session import SessionLock, session_paths
from shared.errors import InvalidInput

#: The exit code of a notifier that finds one already running for the same caseworker.
ALREADY_RUNNING_EXIT = 9
#: Settings that are not carried into the installed configuration: the key is the copy.
NOT_CARRIED = frozenset({"JOBORDRE_KEY_FILE", "JOBORDRE_KEY_DIR"})
#: How long :func:`uninstall` waits for a running notifier to stop, in seconds.
STOP_WAIT_S = 15.0


def config_home() -> Path:
    """``$XDG_CONFIG_HOME``, or ``~/.config``."""
    value = os.environ.get("XDG_CONFIG_HOME")
    return Path(value) if value and Path(value).is_absolute() else Path.home() / ".config"


@dataclass(frozen=True)
class Installation:
    """Where :func:`install` writes, under one config folder."""

    root: Path

    @classmethod
    def here(cls) -> Installation:
        """The installation of the current user (``$XDG_CONFIG_HOME``)."""
        return cls(config_home())

    @property
    def folder(self) -> Path:
        return self.root / "jobordre"

    @property
    def key(self) -> Path:
        return self.folder / "notifier.key"

    @property
    def config(self) -> Path:
        return self.folder / "notifier.json"

    @property
    def autostart(self) -> Path:
        return self.root / "autostart" / "jobordre-notifier.desktop"

    @property
    def unit(self) -> Path:
        return self.root / "systemd" / "user" / "jobordre-notifier.service"

    def load(self) -> dict[str, Any] | None:
        """The installed configuration, or ``None`` if not installed."""
        try:
            stored = json.loads(self.config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise InvalidInput(
                f"{self.config} is unreadable ({type(error).__name__}): run "
                "`jobordre notifier install` again",
                field="config",
            ) from None
        if not isinstance(stored, dict):
            raise InvalidInput(f"{self.config} is not an installed configuration", field="config")
        return stored


def program() -> Path:
    """The ``jobordre`` program the autostart entry runs: the one running now."""
    beside = Path(sys.executable).parent / "jobordre"
    return beside if beside.exists() else Path(sys.argv[0]).resolve()


def exec_argument(value: str) -> str:
    """One argument of a desktop entry's ``Exec`` key, quoted where the spec asks (the
    quoting rules of the Desktop Entry Specification, then its string escaping)."""
    if value and not any(c in value for c in " \t\n\"'\\><~|&;$*?#()`="):
        return value
    quoted = "".join("\\" + c if c in '"`$\\' else c for c in value)
    return '"' + quoted.replace("\\", "\\\\") + '"'


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only, replacing the file atomically."""
    partial = path.with_suffix(path.suffix + ".tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(data)
    os.replace(partial, path)


def desktop_entry(command: list[str]) -> str:
    """The XDG autostart entry that runs ``command``."""
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Jobordre\n"
        "Comment=Notifikationer om de jobordrer du følger\n"
        "Comment[en]=Notifications about the job orders you follow\n"
        f"Exec={' '.join(exec_argument(part) for part in command)}\n"
        f"Icon={icon_path()}\n"
        "Terminal=false\n"
        "NoDisplay=true\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def user_unit(command: list[str]) -> str:
    """The systemd user unit that runs ``command`` in the graphical session."""
    quoted = " ".join(
        '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in command
    )
    return (
        "[Unit]\n"
        "Description=Jobordre notifier (notifications about followed job orders)\n"
        "PartOf=graphical-session.target\n"
        "After=graphical-session.target\n"
        "\n"
        "[Service]\n"
        f"ExecStart={quoted}\n"
        "Restart=on-failure\n"
        f"RestartPreventExitStatus={ALREADY_RUNNING_EXIT}\n"
        "\n"
        "[Install]\n"
        "WantedBy=graphical-session.target\n"
    )


def install(
    where: Installation,
    *,
    caseworker: str,
    principal: str,
    key: Path,
    environment: dict[str, str],
) -> list[Path]:
    """Write everything the desktop needs to start the notifier at login; returns the
    files written. ``environment`` holds the settings to carry (``JOBORDRE_*``)."""
    from workers.client import read_key_file

    try:
        owner = read_key_file(key).principal
    except InvalidInput as error:
        raise InvalidInput(f"key: {error.message}", field="key") from None
    if owner != principal:
        raise InvalidInput(f"key: {key} belongs to {owner}, not {principal}", field="key")
    key_bytes = key.read_bytes()
    where.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    where.folder.chmod(0o700)
    _write_private(where.key, key_bytes)
    carried = {k: v for k, v in sorted(environment.items()) if k.startswith("JOBORDRE_")}
    for name in NOT_CARRIED:
        carried.pop(name, None)
    carried["JOBORDRE_KEY_FILE"] = str(where.key)
    config = {"caseworker": caseworker, "principal": principal, "environment": carried}
    _write_private(where.config, json.dumps(config, indent=2, ensure_ascii=False).encode())
    command = [str(program()), "notifier", "start"]
    where.autostart.parent.mkdir(parents=True, exist_ok=True)
    where.autostart.write_text(desktop_entry(command), encoding="utf-8")
    where.unit.parent.mkdir(parents=True, exist_ok=True)
    where.unit.write_text(user_unit(command), encoding="utf-8")
    return [where.key, where.config, where.autostart, where.unit]


def _home_of(config: dict[str, Any]) -> Path:
    from shared.settings import Settings

    value = config.get("environment", {}).get("JOBORDRE_HOME")
    return Path(value) if value else Settings().home


def stop_running(lock: Path, wait_s: float = STOP_WAIT_S) -> bool:
    """Ask the notifier holding ``lock`` to stop (SIGTERM) and wait until it has; returns
    whether one was running."""
    pid = SessionLock.held(lock)
    if pid is None:
        return False
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while SessionLock.held(lock) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _remove_empty(folder: Path, stop_at: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``stop_at`` while empty."""
    while folder != stop_at and stop_at in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def uninstall(where: Installation) -> list[Path]:
    """Stop the installed notifier and remove what :func:`install` wrote and what the
    notifier kept for that caseworker; returns the files removed."""
    config = where.load()
    files = [where.key, where.config, where.autostart, where.unit]
    home: Path | None = None
    if config is not None:
        home = _home_of(config)
        principal, caseworker = str(config["principal"]), str(config["caseworker"])
        lock, state = session_paths(home, principal, caseworker)
        stop_running(lock)
        cursor = CursorFile.for_caseworker(home, principal, caseworker).path
        files += [lock, state, cursor]
    removed = []
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    for path in files[:4]:
        _remove_empty(path.parent, where.root)
    if home is not None:
        _remove_empty(home / "notifier", home)
    return removed
