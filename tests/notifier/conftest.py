"""A real desktop for the notifier's tests: Xvfb, a private D-Bus session bus and dunst.

Everything is private to the test session: Xvfb picks a free display (``-displayfd``), the
bus is a fresh ``dbus-daemon --session`` whose address goes only to the processes started
here, and dunst (a real notification daemon) owns ``org.freedesktop.Notifications`` on it.
Notifications are read back over D-Bus with jeepney through dunst's own interface.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jeepney import DBusAddress, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import unwrap_msg

from tests.conftest import wait_until
from tests.notifier.tray_host import Tray, start_tray

#: Which Debian/Ubuntu package provides each program the desktop tier needs.
PACKAGES = {"Xvfb": "xvfb", "dbus-daemon": "dbus-x11", "dunst": "dunst"}
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
#: dunst's settings: markup as in the distribution's own dunstrc (bodies are Pango markup,
#: so escaping is tested), and a readable size for the README's screenshot.
DUNSTRC = """[global]
    markup = full
    font = DejaVu Sans 11
    width = 520
    offset = 20x20
"""
DUNST = DBusAddress(
    "/org/freedesktop/Notifications",
    bus_name="org.freedesktop.Notifications",
    interface="org.dunstproject.cmd0",
)


def require(program: str) -> str:
    """The path of ``program``; fails the test with the command that installs it."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(
            f"{program} is not installed: apt-get install "
            f"{' '.join(sorted(set(PACKAGES.values())))} (scripts/test installs them for you)"
        )
    return path


@dataclass
class Desktop:
    """A running X display, session bus and (while ``dunst`` is set) notification daemon."""

    display: str
    bus: str
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dunst: subprocess.Popen[bytes] | None = None
    #: :meth:`history` lists notifications with a higher id than this only.
    mark: int = 0
    _conn: DBusConnection | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment of a program running on this desktop."""
        return {"DISPLAY": self.display, "DBUS_SESSION_BUS_ADDRESS": self.bus}

    @property
    def conn(self) -> DBusConnection:
        if self._conn is None:
            self._conn = open_dbus_connection(bus=self.bus)
        return self._conn

    def service_owned(self) -> bool:
        reply = self.conn.send_and_get_reply(
            message_bus.NameHasOwner("org.freedesktop.Notifications"), timeout=5
        )
        return bool(reply.body[0])

    def start_dunst(self) -> None:
        """Start dunst and wait until it owns the notification service."""
        config = self.workdir / "dunstrc"
        config.write_text(DUNSTRC)
        self.dunst = subprocess.Popen(
            [require("dunst"), "-config", str(config)],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.service_owned, 10, "dunst to own org.freedesktop.Notifications")

    def stop_dunst(self) -> None:
        """Stop dunst and wait until nobody owns the notification service."""
        if self.dunst is not None:
            self.dunst.terminate()
            self.dunst.wait(10)
            self.dunst = None
        wait_until(lambda: not self.service_owned(), 10, "the notification service to go")

    def _dunst(self, method: str) -> Any:
        """Call one of dunst's own methods; a D-Bus error raises."""
        return unwrap_msg(self.conn.send_and_get_reply(new_method_call(DUNST, method), timeout=5))

    def history(self) -> list[dict[str, Any]]:
        """The notifications shown since :meth:`forget`, oldest first.

        Closes the open ones first, because dunst lists only closed notifications in its
        history (dunst 1.9 cannot clear its history, so :meth:`forget` marks a point).
        """
        self._dunst("NotificationCloseAll")
        (items,) = self._dunst("NotificationListHistory")
        found = [{key: value[1] for key, value in item.items()} for item in items]
        return sorted((item for item in found if item["id"] > self.mark), key=lambda i: i["id"])

    def forget(self) -> None:
        """From now on, :meth:`history` lists only notifications shown after this call."""
        self.mark = 0
        self.mark = max((item["id"] for item in self.history()), default=0)

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self.dunst is not None:
            self.dunst.terminate()
            self.dunst.wait(10)
        for process in reversed(self.processes):
            process.terminate()
            process.wait(10)


def start_desktop(workdir: Path) -> Desktop:
    """Xvfb on a free display and a private session bus; dunst is started separately."""
    xvfb = require("Xvfb")
    dbus_daemon = require("dbus-daemon")
    read_end, write_end = os.pipe()
    x = subprocess.Popen(
        [xvfb, "-displayfd", str(write_end), "-screen", "0", "1024x600x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as display_pipe:
        number = display_pipe.readline().strip()
    if not number:
        x.kill()
        pytest.fail("Xvfb did not start (no display number on -displayfd)")
    config = workdir / "session-bus.conf"
    # The standard session config lets the bus start dunst by itself (D-Bus activation),
    # so "no notification service" could never be tested: this bus starts nothing.
    config.write_text(BUS_CONFIG)
    bus = subprocess.Popen(
        [dbus_daemon, "--config-file", str(config), "--nofork", "--print-address"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().decode().strip()
    bus.stdout.close()  # it prints the address only
    if not address:
        bus.kill()
        x.kill()
        pytest.fail("dbus-daemon did not print its address")
    return Desktop(f":{number}", address, workdir, [x, bus])


@pytest.fixture(scope="session")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desktop]:
    """One private desktop with dunst for the test session."""
    running = start_desktop(tmp_path_factory.mktemp("desktop"))
    running.start_dunst()
    yield running
    running.stop()


@pytest.fixture
def on_desktop(desktop: Desktop, monkeypatch: pytest.MonkeyPatch) -> Desktop:
    """The test process itself talks to the private desktop; dunst is running and empty."""
    for name, value in desktop.env.items():
        monkeypatch.setenv(name, value)
    if desktop.dunst is None:
        desktop.start_dunst()
    desktop.forget()
    return desktop


def wait_for_history(desktop: Desktop, count: int, timeout_s: float = 15) -> list[dict[str, Any]]:
    """The first ``count`` notifications once dunst has that many."""
    deadline = time.monotonic() + timeout_s
    while True:
        items = desktop.history()
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


@pytest.fixture(scope="module")
def tray(desktop: Desktop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tray]:
    """A real tray (trayer) on the private desktop, for one test module."""
    running = start_tray(desktop.display, tmp_path_factory.mktemp("trayer"))
    yield running
    running.stop()
