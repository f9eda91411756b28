"""The whole way: a change made through the CLI appears on a real desktop.

Real redis-server, a real worker process, the real ``jobordre notifier`` process, and a real
notification daemon (dunst on Xvfb and a private D-Bus). Texts are read back from dunst.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JOBORDRE, System, wait_until
from tests.factories import CPR_1, order_doc
from tests.notifier.conftest import Desktop, wait_for_history

pytestmark = [pytest.mark.integration, pytest.mark.desktop]

KBH = "jobcentre:101"
AARHUS = "jobcentre:751"
CASEWORKER = "kf1"
TITLE = "Lagermedarbejder til Aarhus Havn"


class NotifierProcess:
    """``jobordre notifier`` on the private desktop, its output in a log file."""

    def __init__(self, system: System, desktop: dict[str, str], home: Path) -> None:
        self.log = home / f"notifier-{len(list(home.glob('notifier-*.log')))}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(JOBORDRE), "notifier", "--caseworker", CASEWORKER, "--as", AARHUS, "-v"],
                env=system.env(**desktop, JOBORDRE_HOME=str(home)),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: self.process.poll() is not None or "watching for changes" in self.output(),
            30,
            "the notifier to catch up",
        )
        assert self.process.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture
def order_id(system: System, tmp_path: Path) -> int:
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc(title=TITLE)))
    order: dict[str, Any] = system.json("order", "register", "--file", str(path), "--as", KBH)
    system.json("follow", str(order["id"]), "--caseworker", CASEWORKER, "--as", AARHUS)
    return int(order["id"])


@pytest.fixture
def notifier_home(tmp_path: Path) -> Path:
    home = tmp_path / "desktop-home"
    home.mkdir()
    return home


@pytest.fixture
def running(
    system: System, on_desktop: Desktop, notifier_home: Path, order_id: int
) -> Iterator[NotifierProcess]:
    process = NotifierProcess(system, on_desktop.env, notifier_home)
    yield process
    process.stop()


def test_a_placement_through_the_cli_appears_on_the_desktop_without_the_cpr(
    system: System, on_desktop: Desktop, running: NotifierProcess, order_id: int
) -> None:
    system.json("placement", "register", str(order_id), "--cpr", "-", "--as", AARHUS, stdin=CPR_1)
    items = wait_for_history(on_desktop, 1)
    assert [(item["summary"], item["body"], item["appname"]) for item in items] == [
        (
            f"Jobordre {order_id}: {TITLE}",
            "Formidlingslog opdateret: 1 ny formidling fra Jobcenter Aarhus",
            "jobordre",
        )
    ]
    everything = json.dumps(items) + running.output()
    assert CPR_1 not in everything
    assert CPR_1[:6] not in everything


def test_a_status_change_and_then_changes_while_off_as_one_catch_up(
    system: System,
    on_desktop: Desktop,
    running: NotifierProcess,
    notifier_home: Path,
    order_id: int,
) -> None:
    system.json("order", "status", str(order_id), "inactivated", "--as", KBH)
    items = wait_for_history(on_desktop, 1)
    assert [(item["summary"], item["body"]) for item in items] == [
        (f"Jobordre {order_id}: {TITLE}", "Ny status: Inaktiveret")
    ]
    running.stop()

    # While the notifier is off: reactivated, then closed as filled.
    system.json("order", "status", str(order_id), "processing", "--as", KBH)
    system.json("order", "status", str(order_id), "closed_filled", "--as", KBH)
    restarted = NotifierProcess(system, on_desktop.env, notifier_home)
    try:
        items = wait_for_history(on_desktop, 2)
        assert [(item["summary"], item["body"]) for item in items[1:]] == [
            (
                "Mens du var væk: 2 ændringer på 1 jobordre",
                f"Jobordre {order_id}: {TITLE} – Ny status: Afsluttet – behovet er dækket",
            )
        ]
    finally:
        restarted.stop()
    # Started again with nothing new: nothing is shown twice.
    again = NotifierProcess(system, on_desktop.env, notifier_home)
    again.stop()
    assert len(on_desktop.history()) == 2


def test_without_a_notification_service_it_says_so_once_and_prints_instead(
    system: System, notifier_home: Path, order_id: int
) -> None:
    nowhere = {"DBUS_SESSION_BUS_ADDRESS": f"unix:path={notifier_home}/no-bus", "DISPLAY": ""}
    notifier = NotifierProcess(system, nowhere, notifier_home)
    try:
        system.json("order", "status", str(order_id), "inactivated", "--as", KBH)
        system.json("order", "status", str(order_id), "processing", "--as", KBH)
        wait_until(lambda: "Under behandling" in notifier.output(), 30, "the terminal lines")
    finally:
        notifier.stop()
    output = notifier.output()
    assert output.count("cannot show desktop notifications") == 1
    assert f"Jobordre {order_id}: {TITLE}: Ny status: Under behandling" in output
