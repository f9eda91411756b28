"""The notifier as a desktop program, on a real desktop: its icon in a real tray (trayer on
Xvfb), its menu clicked with xdotool, notifications on a real daemon (dunst on a private
D-Bus), a real redis-server stopped and started, a real worker, and installing it as a
session would start it at login."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JOBORDRE, RedisServer, System, start_redis, wait_until
from tests.factories import order_doc
from tests.notifier.conftest import Desktop, wait_for_history
from tests.notifier.test_install import split_exec
from tests.notifier.tray_host import Tray

pytestmark = [pytest.mark.integration, pytest.mark.desktop]

KBH = "jobcentre:101"
AARHUS = "jobcentre:751"
CASEWORKER = "kf1"
TITLE = "Lagermedarbejder til Aarhus Havn"
ORDER_URL = "https://fagsystem.example/jobordre/{id}"
#: The menu's rows with one order followed: heading, the order, pause, recent, quit.
ORDER_ROW, PAUSE_ROW, RECENT_ROW, QUIT_ROW = 1, 2, 3, 4
#: The order's submenu: heading, "Åbn", "Følg ikke længere".
OPEN_ROW, UNFOLLOW_ROW = 1, 2
#: Short coalescing windows, so a test waits little for a notification.
FAST = {
    "JOBORDRE_NOTIFIER_QUIET_MS": "100",
    "JOBORDRE_NOTIFIER_BURST_MS": "500",
    "JOBORDRE_NOTIFIER_RECONNECT_MAX_MS": "500",
}


@pytest.fixture
def world(bare_system: System, tmp_path: Path) -> Iterator[tuple[System, int]]:
    """A worker on a private Redis, and one order the caseworker follows."""
    bare_system.start_worker()
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc(title=TITLE)))
    order: dict[str, Any] = bare_system.json("order", "register", "--file", str(path), "--as", KBH)
    bare_system.json("follow", str(order["id"]), "--caseworker", CASEWORKER, "--as", AARHUS)
    yield bare_system, int(order["id"])
    bare_system.stop_workers()


class App:
    """A desktop program's process on the private desktop, its output in a log file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    @classmethod
    def notifier(cls, system: System, desktop: Desktop, home: Path, **env: str) -> App:
        app = cls(
            [str(JOBORDRE), "notifier", "--caseworker", CASEWORKER, "--as", AARHUS, "-v"],
            system.env(**{**desktop.env, **FAST, "JOBORDRE_HOME": str(home), **env}),
            home.parent / f"{home.name}.log",
        )
        app.wait_watching()
        return app

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_watching(self) -> None:
        wait_until(
            lambda: self.process.poll() is not None or "watching for changes" in self.output(),
            30,
            "the notifier to catch up",
        )
        assert self.process.poll() is None, self.output()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "desktop-home"
    folder.mkdir()
    return folder


def status(system: System, home: Path) -> dict[str, Any]:
    done = system.cli(
        "notifier", "status", "--caseworker", CASEWORKER, "--as", AARHUS, "--json",
        JOBORDRE_HOME=str(home),
    )  # fmt: skip
    assert done.code == 0, done.err
    report: dict[str, Any] = json.loads(done.out)
    return report


def change_status(system: System, order_id: int, status_: str) -> None:
    system.json("order", "status", str(order_id), status_, "--as", KBH)


def test_the_icon_docks_in_the_tray_and_its_state_follows_redis(
    world: tuple[System, int], on_desktop: Desktop, tray: Tray, home: Path
) -> None:
    system, _ = world
    app = App.notifier(system, on_desktop, home)
    try:
        tray.icon()  # docked: its parent is trayer's, not the root window
        tray.wait_state("forbundet")
        report = status(system, home)
        assert report["running"] is True
        assert (report["pid"], report["state"], report["connected"]) == (
            app.process.pid,
            "connected",
            True,
        )

        port, workdir = system.redis.port, system.redis.workdir
        system.redis.stop()
        tray.wait_state("forbinder igen")
        assert status(system, home)["state"] == "reconnecting"

        restarted: RedisServer = start_redis(workdir, port=port)
        system.redis.process = restarted.process  # the fixture stops it
        tray.wait_state("forbundet", 60)
        assert status(system, home)["connected"] is True
    finally:
        app.stop()
    assert app.process.returncode == 0, app.output()
    wait_until(lambda: status(system, home)["running"] is False, 10, "the lock to be let go")


def test_the_menu_pauses_resumes_shows_recent_opens_unfollows_and_quits(
    world: tuple[System, int], on_desktop: Desktop, tray: Tray, home: Path, tmp_path: Path
) -> None:
    system, order_id = world
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n')
    browser.chmod(0o755)
    app = App.notifier(system, on_desktop, home, BROWSER=str(browser), JOBORDRE_ORDER_URL=ORDER_URL)
    try:
        tray.wait_state("forbundet")

        # Pause: nothing is shown while paused, then ONE summary.
        tray.choose(tray.open_menu(), PAUSE_ROW)
        tray.wait_state("på pause")
        change_status(system, order_id, "inactivated")
        change_status(system, order_id, "processing")
        time.sleep(2.0)  # four burst windows
        assert on_desktop.history() == []
        tray.choose(tray.open_menu(), PAUSE_ROW)  # now "Genoptag"
        tray.wait_state("forbundet")
        items = wait_for_history(on_desktop, 1)
        time.sleep(1.0)
        items = on_desktop.history()
        assert [(item["summary"], item["body"]) for item in items] == [
            (
                "Mens der var pause: 2 ændringer på 1 jobordre",
                f"Jobordre {order_id}: {TITLE} – Ny status: Under behandling",
            )
        ]

        # "Vis seneste" shows it again.
        tray.choose(tray.open_menu(), RECENT_ROW)
        again = wait_for_history(on_desktop, 2)
        assert [item["summary"] for item in again] == [items[0]["summary"]] * 2

        # The order's submenu: "Åbn" opens it in the browser.
        submenu = tray.choose(tray.open_menu(), ORDER_ROW)
        tray.choose(submenu, OPEN_ROW)
        wait_until(opened.exists, 10, "the fake browser to be started")
        assert opened.read_text().split() == [ORDER_URL.replace("{id}", str(order_id))]

        # "Følg ikke længere": the same unfollow command as the CLI.
        submenu = tray.choose(tray.open_menu(), ORDER_ROW)
        tray.choose(submenu, UNFOLLOW_ROW)
        wait_until(
            lambda: (
                system.json("following", "--caseworker", CASEWORKER, "--as", AARHUS)["orders"] == []
            ),
            15,
            "the order to be unfollowed",
        )
        on_desktop.forget()
        change_status(system, order_id, "inactivated")
        time.sleep(2.0)
        assert on_desktop.history() == []

        # "Afslut" ends the program, and its icon leaves the tray.
        tray.choose(tray.open_menu(), QUIT_ROW)
        assert app.process.wait(15) == 0, app.output()
        wait_until(lambda: not tray.windows("^Jobordre: "), 10, "the icon to leave the tray")
    finally:
        app.stop()
    assert "Traceback" not in app.output()


def test_in_english_the_icon_and_status_say_so_in_english(
    world: tuple[System, int], on_desktop: Desktop, tray: Tray, home: Path
) -> None:
    system, _ = world
    app = App.notifier(system, on_desktop, home, JOBORDRE_LANGUAGE="en")
    try:
        tray.wait_state("connected")
        done = system.cli(
            "notifier", "status", "--caseworker", CASEWORKER, "--as", AARHUS,
            JOBORDRE_HOME=str(home), JOBORDRE_LANGUAGE="en",
        )  # fmt: skip
        assert "running since" in done.out and f"(pid {app.process.pid}), connected" in done.out
        assert "no change shown yet" in done.out
    finally:
        app.stop()


def test_a_second_notifier_for_the_same_caseworker_says_so_and_exits(
    world: tuple[System, int], on_desktop: Desktop, home: Path
) -> None:
    system, _ = world
    first = App.notifier(system, on_desktop, home, DISPLAY="")
    try:
        second = system.cli(
            "notifier", "--caseworker", CASEWORKER, "--as", AARHUS, JOBORDRE_HOME=str(home)
        )
        assert second.code == 9
        assert f"kører allerede for denne sagsbehandler (pid {first.process.pid})" in second.err
        assert first.process.poll() is None
    finally:
        first.stop()


def _exec_line(entry: Path) -> list[str]:
    """The ``Exec`` command of a desktop entry, as a session's launcher splits it."""
    line = next(
        line for line in entry.read_text().splitlines() if line.startswith("Exec=")
    ).removeprefix("Exec=")
    return split_exec(line)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_installed_it_starts_at_login_notifies_and_uninstall_leaves_nothing(
    world: tuple[System, int], on_desktop: Desktop, tray: Tray, home: Path, tmp_path: Path
) -> None:
    system, order_id = world
    config = tmp_path / "config"
    key = system.home / "keys" / "jobcentre_751.key"
    assert key.exists()
    # The installing shell knows Redis and the order URL; a login session knows neither.
    shell = {
        k: v for k, v in system.env(**FAST, JOBORDRE_HOME=str(home)).items() if k != "JOBORDRE_DB"
    }
    shell["XDG_CONFIG_HOME"] = str(config)
    done = subprocess.run(
        [str(JOBORDRE), "notifier", "install", "--caseworker", CASEWORKER, "--as", AARHUS,
         "--key", str(key), "--json"],
        env=shell, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = sorted(Path(p) for p in json.loads(done.stdout)["files"])
    assert written == _files_under(config)
    folder = config / "jobordre"
    assert (folder.stat().st_mode & 0o777, (folder / "notifier.key").stat().st_mode & 0o777) == (
        0o700,
        0o600,
    )
    assert (folder / "notifier.key").read_bytes() == key.read_bytes()
    entry = config / "autostart" / "jobordre-notifier.desktop"
    assert (config / "systemd" / "user" / "jobordre-notifier.service").exists()

    session = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(config),
        **on_desktop.env,
    }
    app = App(_exec_line(entry), session, tmp_path / "login.log")
    try:
        tray.wait_state("forbundet")  # what the caseworker sees once it is connected
        change_status(system, order_id, "inactivated")
        items = wait_for_history(on_desktop, 1)
        assert [(item["summary"], item["body"]) for item in items] == [
            (f"Jobordre {order_id}: {TITLE}", "Ny status: Inaktiveret")
        ]
        report = json.loads(
            subprocess.run(
                [str(JOBORDRE), "notifier", "status", "--json"],
                env=session,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )
        assert {k: report[k] for k in ("installed", "caseworker", "as", "running", "pid")} == {
            "installed": True,
            "caseworker": CASEWORKER,
            "as": AARHUS,
            "running": True,
            "pid": app.process.pid,
        }
        assert report["last_shown"]["title"] == f"Jobordre {order_id}: {TITLE}"

        done = subprocess.run(
            [str(JOBORDRE), "notifier", "uninstall"],
            env=session, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "afinstalleret" in done.stdout
        assert app.process.wait(15) == 0, app.output()
    finally:
        app.stop()
    assert _files_under(config) == []
    assert list(config.iterdir()) == []
    assert not (home / "notifier").exists()
