"""The desktop adapter: plyer's dbus backend, failures detected, the terminal fallback."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from notifier.backend import (
    DeliveryFailed,
    FallbackDesktop,
    PlyerDesktop,
    TerminalDesktop,
)
from tests.notifier.conftest import Desktop, wait_for_history
from tests.notifier.fakes import FakeDesktop


def test_the_terminal_prints_title_and_body() -> None:
    out = io.StringIO()
    TerminalDesktop(out).show("Jobordre 42: Lager", "Ny status: Under behandling\nlinje 2")
    assert out.getvalue() == "Jobordre 42: Lager: Ny status: Under behandling\n  linje 2\n"


def test_the_fallback_warns_once_per_outage_and_says_when_the_desktop_is_back() -> None:
    primary = FakeDesktop(broken=True)
    out, warn = io.StringIO(), io.StringIO()
    desktop = FallbackDesktop(primary, TerminalDesktop(out), warn)
    desktop.show("a", "1")
    desktop.show("b", "2")
    assert warn.getvalue().count("cannot show desktop notifications") == 1
    assert "no notification service (fake)" in warn.getvalue()
    assert out.getvalue() == "a: 1\nb: 2\n"
    primary.broken = False
    desktop.show("c", "3")
    assert primary.shown == [("c", "3")]
    assert "work again" in warn.getvalue()
    assert out.getvalue() == "a: 1\nb: 2\n"


def test_without_dbus_python_delivery_fails_with_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "dbus", None)  # makes `import dbus` fail
    with pytest.raises(DeliveryFailed, match=r"libdbus-1-dev libglib2\.0-dev"):
        PlyerDesktop().show("Jobordre 1: x", "y")


def test_without_a_session_bus_delivery_fails() -> None:
    # dbus-python keeps one session bus per process: ask in a fresh one, with no bus.
    env = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY")}
    env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/jobordre-test-bus"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from notifier.backend import PlyerDesktop, DeliveryFailed\n"
            "try:\n    PlyerDesktop().show('t', 'b')\n"
            "except DeliveryFailed as e:\n    print('failed:', e)\n"
            "else:\n    print('delivered')\n",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("failed: no notification service reachable"), done.stdout


@pytest.mark.desktop
def test_a_notification_reaches_a_real_daemon(on_desktop: Desktop) -> None:
    title = "Jobordre 42: Lagermedarbejder"
    body = "Ny status: Inaktiveret – tilstrækkelige henvisninger"
    PlyerDesktop().show(title, body)
    items = wait_for_history(on_desktop, 1)
    assert [(item["summary"], item["body"], item["appname"]) for item in items] == [
        (title, body, "jobordre")
    ]


@pytest.mark.desktop
def test_markup_characters_in_an_order_title_are_escaped_for_the_daemon(
    on_desktop: Desktop,
) -> None:
    # dunst (markup = full, as Debian ships it) says "body-markup" in its capabilities and
    # renders bodies as Pango markup: an order title such as "Smed & <lærling>" must come
    # escaped, or "<lærling>" is read as a tag. Titles (summaries) are plain text.
    PlyerDesktop().show("Jobordre 7: Smed & <lærling>", "Jobordre 7: Smed & <lærling> – x")
    items = wait_for_history(on_desktop, 1)
    assert [item["summary"] for item in items] == ["Jobordre 7: Smed & <lærling>"]
    assert items[0]["body"] == "Jobordre 7: Smed &amp; &lt;lærling&gt; – x"
    assert "<lærling>" not in items[0]["message"].split("\n", 1)[1]


@pytest.mark.desktop
def test_a_title_starting_with_a_dash_is_delivered(on_desktop: Desktop) -> None:
    # plyer's notify-send path drops these silently; the D-Bus path must not.
    PlyerDesktop().show("-42 er ikke et flag", "krop")
    items = wait_for_history(on_desktop, 1)
    assert [item["summary"].strip() for item in items] == ["-42 er ikke et flag"]


@pytest.mark.desktop
def test_no_notification_service_on_the_bus_is_a_failed_delivery(on_desktop: Desktop) -> None:
    on_desktop.stop_dunst()
    try:
        with pytest.raises(DeliveryFailed, match=r"no notification service.*ServiceUnknown"):
            PlyerDesktop().show("Jobordre 1: x", "y")
    finally:
        on_desktop.start_dunst()
