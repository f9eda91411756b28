"""What ``notifier/tray.py`` takes from pystray's Xorg icon beyond its public interface,
pinned on a real tray (trayer on Xvfb): the X connection it pushes changes through
(``Icon._display``, see ``_pushed``) and the icon's window its own menu listens on
(``Icon._window``). A pystray release that renames either fails here, not on a
caseworker's desktop, where the icon would keep an old state or never open its menu."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifier.tray import Controls, PystrayTray, State, View, XMenu
from tests.notifier.conftest import Desktop
from tests.notifier.tray_host import Tray, geometry

pytestmark = [pytest.mark.integration, pytest.mark.desktop]


@pytest.fixture
def icon(on_desktop: Desktop, tray: Tray) -> Iterator[PystrayTray]:
    shown = PystrayTray("da", Controls(), None)
    shown.start()
    yield shown
    shown.stop()


def test_the_xorg_icon_has_the_connection_and_window_the_tray_code_uses(
    icon: PystrayTray, tray: Tray
) -> None:
    import Xlib.display

    assert isinstance(icon.icon._display, Xlib.display.Display)
    docked = int(tray.icon())  # xdotool gives ids in decimal
    assert icon.icon._window.id == docked, "the window the menu listens on is the docked icon"
    assert isinstance(icon.menu, XMenu), "pystray's Xorg icon has no menu of its own"
    assert geometry(tray.display, tray.icon()).width > 0


def test_a_change_pushed_through_that_connection_shows_on_the_tray(
    icon: PystrayTray, tray: Tray
) -> None:
    icon.update(View(State.CONNECTED))
    window = tray.wait_state("forbundet")
    icon.update(View(State.PAUSED))
    assert tray.wait_state("på pause") == window, "the same icon, with a new tooltip"
