"""A real tray on the tests' private X display, and a hand on the mouse.

``trayer`` (Debian's XEmbed system tray) owns the display's system-tray selection, so the
notifier's pystray icon docks into it as on a caseworker's panel. The icon and the menu are
found by window name with ``xdotool``, their position with ``xwininfo``, and clicked with
``xdotool`` (XTEST: real pointer events through the X server).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from notifier.tray import MENU_WINDOW_NAME, ROW_HEIGHT_PX, tray_host_present
from tests.conftest import wait_until

#: Which Debian package provides each program used here.
PACKAGES = {
    "trayer": "trayer",
    "xdotool": "xdotool",
    "xwininfo": "x11-utils",
    "import": "imagemagick",
}
#: The tray's height; it sits at the bottom right (dunst draws at the top right).
TRAY_HEIGHT_PX = 40
TRAY_WIDTH_PX = 160


def need(program: str) -> str:
    """The path of ``program``; fails the test naming the package that has it."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(
            f"{program} is not installed: apt-get install {PACKAGES[program]} "
            "(scripts/test installs it for you)"
        )
    return path


def run(display: str, *args: str) -> str:
    """Run an X tool on ``display``; its output."""
    done = subprocess.run(
        list(args),
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        # X window names (WM_NAME) are Latin-1.
        encoding="latin-1",
        timeout=20,
        check=False,
    )
    return done.stdout


@dataclass
class Geometry:
    x: int
    y: int
    width: int
    height: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2


def geometry(display: str, window: str) -> Geometry:
    """A window's absolute position and size (xwininfo)."""
    info = run(display, need("xwininfo"), "-id", window)
    values = {
        key: int(re.search(rf"{key}:\s+(-?\d+)", info).group(1))  # type: ignore[union-attr]
        for key in ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height")
    }
    return Geometry(*values.values())


def parent(display: str, window: str) -> str:
    """The id of a window's parent (xwininfo -tree)."""
    info = run(display, need("xwininfo"), "-tree", "-id", window)
    match = re.search(r"Parent window id: (0x[0-9a-f]+)", info)
    assert match is not None, info
    return match.group(1)


def root(display: str) -> str:
    info = run(display, need("xwininfo"), "-root")
    match = re.search(r"Window id: (0x[0-9a-f]+)", info)
    assert match is not None, info
    return match.group(1)


def windows_named(display: str, pattern: str) -> list[str]:
    """Ids of the windows whose name matches ``pattern`` (xdotool search)."""
    return run(display, need("xdotool"), "search", "--name", pattern).split()


def name_of(display: str, window: str) -> str:
    return run(display, need("xdotool"), "getwindowname", window).strip()


def click(display: str, x: int, y: int) -> None:
    """Move the pointer to (x, y) and click the left button there."""
    run(display, need("xdotool"), "mousemove", "--sync", str(x), str(y))
    time.sleep(0.1)
    run(display, need("xdotool"), "click", "1")


@dataclass
class Tray:
    """``trayer`` running on ``display``."""

    display: str
    process: subprocess.Popen[bytes]

    def icon(self, timeout_s: float = 30) -> str:
        """The notifier's icon window, once it is docked (its parent is not the root)."""

        def docked() -> str | None:
            top = root(self.display)
            for window in windows_named(self.display, "^Jobordre: "):
                if parent(self.display, window) != top:
                    return window
            return None

        found: str = wait_until(docked, timeout_s, "the notifier's icon docked in the tray")
        return found

    def wait_state(self, words: str, timeout_s: float = 30) -> str:
        """The icon once its tooltip (window name) says ``Jobordre: <words>``."""
        return str(
            wait_until(
                lambda: next(
                    (
                        w
                        for w in windows_named(self.display, "^Jobordre: ")
                        if name_of(self.display, w) == f"Jobordre: {words}"
                    ),
                    None,
                ),
                timeout_s,
                f"the icon to say 'Jobordre: {words}'",
                interval_s=0.1,
            )
        )

    def open_menu(self) -> Geometry:
        """Click the icon; the menu popup's geometry once it is up."""
        x, y = geometry(self.display, self.icon()).centre
        click(self.display, x, y)
        menu = wait_until(
            lambda: windows_named(self.display, f"^{MENU_WINDOW_NAME}$"), 10, "the tray menu"
        )[0]
        time.sleep(0.2)  # drawn
        return geometry(self.display, menu)

    def choose(self, menu: Geometry, row: int) -> Geometry:
        """Click the menu's ``row`` (0 is the heading); the menu again (after a submenu
        row it shows the submenu)."""
        click(self.display, menu.x + menu.width // 2, menu.y + row * ROW_HEIGHT_PX + 15)
        time.sleep(0.3)
        found = windows_named(self.display, f"^{MENU_WINDOW_NAME}$")
        return geometry(self.display, found[0]) if found else menu

    def windows(self, pattern: str) -> list[str]:
        """Ids of the windows on this display whose name matches ``pattern``."""
        return windows_named(self.display, pattern)

    def screenshot(self, path: Path, box: tuple[int, int, int, int]) -> None:
        """Save the part ``box`` (left, top, right, bottom) of the screen as a PNG."""
        from PIL import Image

        whole = path.with_suffix(".whole.png")
        subprocess.run(
            [need("import"), "-display", self.display, "-window", "root", str(whole)],
            check=True,
            timeout=30,
        )
        with Image.open(whole) as image:
            image.crop(box).save(path)
        whole.unlink()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_tray(display: str, workdir: Path) -> Tray:
    """Start trayer at the bottom right of ``display``; wait until it owns the tray."""
    log = (workdir / "trayer.log").open("wb")
    process = subprocess.Popen(
        [
            need("trayer"),
            "--edge", "bottom", "--align", "right",
            "--widthtype", "pixel", "--width", str(TRAY_WIDTH_PX),
            "--heighttype", "pixel", "--height", str(TRAY_HEIGHT_PX),
            "--SetDockType", "true", "--transparent", "true", "--alpha", "0",
            "--tint", "0x3c3c3c",
        ],
        env={**os.environ, "DISPLAY": display},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    wait_until(lambda: tray_host_present(display), 10, "trayer to own the system tray")
    return Tray(display, process)
