"""An icon started the moment a tray appears is embedded all the same (notifier/tray.py,
``PystrayTray._dock``): at login the panel and the notifier start together, and a tray
that has just taken the system-tray selection can drop the icon's one request to be
embedded. On a real tray (trayer on Xvfb), started anew for each icon."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.tray import Controls, PystrayTray
from tests.notifier.conftest import Desktop
from tests.notifier.tray_host import parent, root, start_tray

pytestmark = [pytest.mark.integration, pytest.mark.desktop]

#: Trays started, each with an icon at once: before the icon asked again, about three in
#: four icons were never embedded, so three in a row pass by chance about once in 70 runs.
ROUNDS = 3


def test_an_icon_started_with_its_tray_is_embedded(on_desktop: Desktop, tmp_path: Path) -> None:
    outcomes: list[str] = []
    for number in range(ROUNDS):
        tray = start_tray(on_desktop.display, tmp_path)
        icon = PystrayTray("da", Controls(), None)
        try:
            icon.start()  # returns once the icon is embedded, or has given up
            window = hex(icon.icon._window.id)
            embedded = parent(tray.display, window) != root(tray.display)
            outcomes.append(f"round {number}: " + ("embedded" if embedded else "left out"))
        finally:
            icon.stop()
            tray.stop()
    assert outcomes == [f"round {number}: embedded" for number in range(ROUNDS)]
