"""The desktop adapters: pure-Python D-Bus (jeepney) and plyer's dbus backend, against
real notification daemons (dunst, GNOME's notification-daemon) on a private D-Bus under
Xvfb; failures detected; the terminal fallback."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jeepney import DBusAddress, new_method_call
from jeepney.wrappers import unwrap_msg

from notifier.backend import (
    APP_NAME,
    DeliveryFailed,
    FallbackDesktop,
    JeepneyDesktop,
    PlyerDesktop,
    TerminalDesktop,
    check_order_url,
    desktop_backend,
    icon_path,
)
from shared.errors import InvalidInput
from tests.conftest import wait_until
from tests.notifier.conftest import Desktop, wait_for_history
from tests.notifier.fakes import FakeDesktop

ORDER_URL = "https://fagsystem.example/jobordre/{id}"
#: GNOME's stand-alone notification daemon (Debian package notification-daemon).
NOTIFICATION_DAEMON = Path("/usr/lib/notification-daemon/notification-daemon")
NOTIFICATIONS = DBusAddress(
    "/org/freedesktop/Notifications",
    bus_name="org.freedesktop.Notifications",
    interface="org.freedesktop.Notifications",
)
DUNST_CMD = DBusAddress(
    "/org/freedesktop/Notifications",
    bus_name="org.freedesktop.Notifications",
    interface="org.dunstproject.cmd0",
)


@pytest.fixture(
    params=[
        pytest.param(PlyerDesktop, id="dbus-python"),
        pytest.param(JeepneyDesktop, id="jeepney"),
    ]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each D-Bus backend in turn."""
    made = request.param()
    yield made
    if isinstance(made, JeepneyDesktop):
        made.close()


@pytest.fixture
def opened() -> list[str]:
    return []


@pytest.fixture
def jeepney_with_links(opened: list[str]) -> Iterator[JeepneyDesktop]:
    """The pure-Python backend with an order URL; "opening" records the address."""
    made = JeepneyDesktop(order_url=ORDER_URL, opener=opened.append)
    yield made
    made.close()


def test_the_terminal_prints_title_and_body() -> None:
    out = io.StringIO()
    TerminalDesktop(out).show("Jobordre 42: Lager", "Ny status: Under behandling\nlinje 2")
    assert out.getvalue() == "Jobordre 42: Lager: Ny status: Under behandling\n  linje 2\n"


@pytest.mark.parametrize(
    "title",
    [
        pytest.param("Lager\x1b[2J", id="clear-screen"),
        pytest.param("Lager\x1b]8;;https://evil.example\x07klik\x1b]8;;\x07", id="osc8-link"),
        pytest.param("Lager\nNy status: Afsluttet", id="fake-status-line"),
        pytest.param("Lager\x9b2J", id="c1-csi"),
    ],
)
def test_the_terminal_writes_control_characters_out(title: str) -> None:
    # A title stored before controls were refused on input must stay inert on a terminal.
    out = io.StringIO()
    TerminalDesktop(out).show(f"Jobordre 42: {title}", "Ny status: Under behandling\x1b[31m")
    printed = out.getvalue()
    assert not any(ch in printed for ch in "\x1b\x07\x9b"), printed
    assert printed.count("\n") == 1, "one notification, one line"
    assert printed.startswith("Jobordre 42: Lager")


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
def test_a_notification_reaches_a_real_daemon_named_jobordre_with_its_icon(
    on_desktop: Desktop, backend: Any
) -> None:
    title = "Jobordre 42: Lagermedarbejder"
    body = "Ny status: Inaktiveret – tilstrækkelige henvisninger"
    backend.show(title, body, 42)
    items = wait_for_history(on_desktop, 1)
    assert [(item["summary"], item["body"], item["appname"]) for item in items] == [
        (title, body, "Jobordre")
    ]
    assert items[0]["icon_path"] == icon_path()


def test_the_icon_ships_in_the_package() -> None:
    assert Path(icon_path()).read_bytes().startswith(b"\x89PNG"), icon_path()
    assert APP_NAME == "Jobordre"


@pytest.mark.desktop
def test_markup_characters_in_an_order_title_are_escaped_for_the_daemon(
    on_desktop: Desktop, backend: Any
) -> None:
    # dunst (markup = full, as Debian ships it) says "body-markup" in its capabilities and
    # renders bodies as Pango markup: an order title such as "Smed & <lærling>" must come
    # escaped, or "<lærling>" is read as a tag. Titles (summaries) are plain text.
    backend.show("Jobordre 7: Smed & <lærling>", "Jobordre 7: Smed & <lærling> – x")
    items = wait_for_history(on_desktop, 1)
    assert [item["summary"] for item in items] == ["Jobordre 7: Smed & <lærling>"]
    assert items[0]["body"] == "Jobordre 7: Smed &amp; &lt;lærling&gt; – x"
    assert "<lærling>" not in items[0]["message"].split("\n", 1)[1]


@pytest.mark.desktop
def test_a_title_starting_with_a_dash_is_delivered(on_desktop: Desktop, backend: Any) -> None:
    # plyer's notify-send path drops these silently; the D-Bus path must not.
    backend.show("-42 er ikke et flag", "krop")
    items = wait_for_history(on_desktop, 1)
    assert [item["summary"].strip() for item in items] == ["-42 er ikke et flag"]


@pytest.mark.desktop
def test_no_notification_service_on_the_bus_is_a_failed_delivery(
    on_desktop: Desktop, backend: Any
) -> None:
    on_desktop.stop_dunst()
    try:
        with pytest.raises(DeliveryFailed, match=r"no notification service.*ServiceUnknown"):
            backend.show("Jobordre 1: x", "y")
    finally:
        on_desktop.start_dunst()
    on_desktop.forget()  # a new dunst numbers its notifications from 1 again
    backend.show("Jobordre 1: x", "y")  # and it works again once a service is back
    assert [item["summary"] for item in wait_for_history(on_desktop, 1)] == ["Jobordre 1: x"]


# --- the pure-Python backend (jeepney) -------------------------------------------------------


def test_without_a_session_bus_the_pure_python_backend_fails_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/jobordre-test-bus")
    with pytest.raises(DeliveryFailed, match="no notification service reachable"):
        JeepneyDesktop().show("t", "b")
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")
    with pytest.raises(DeliveryFailed, match="DBUS_SESSION_BUS_ADDRESS is not set"):
        JeepneyDesktop().show("t", "b")


@pytest.mark.parametrize(
    ("dbus_python", "order_url", "chosen"),
    [
        pytest.param(False, None, JeepneyDesktop, id="no-dbus-python-pure-python"),
        pytest.param(True, None, PlyerDesktop, id="dbus-python-installed-plyer"),
        pytest.param(True, ORDER_URL, JeepneyDesktop, id="order-url-needs-actions-pure-python"),
    ],
)
def test_linux_uses_plyers_dbus_python_backend_if_installed_else_pure_python(
    monkeypatch: pytest.MonkeyPatch, dbus_python: bool, order_url: str | None, chosen: type
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            (real(name, *a) if dbus_python else None) if name == "dbus" else real(name, *a)
        ),
    )
    assert type(desktop_backend(10_000, order_url)) is chosen


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("fagsystem.example/jobordre/{id}", id="no-scheme"),
        pytest.param("https://fagsystem.example/jobordre/", id="no-id"),
        pytest.param("javascript:alert({id})", id="not-http"),
    ],
)
def test_a_bad_order_url_names_the_variable(template: str) -> None:
    with pytest.raises(InvalidInput, match=r"JOBORDRE_ORDER_URL.*\{id\}") as caught:
        check_order_url(template)
    assert caught.value.field == "JOBORDRE_ORDER_URL"


def _dunst_invoke_first_action(desktop: Desktop) -> None:
    """What a click on the notification does in dunst: its default action."""
    unwrap_msg(
        desktop.conn.send_and_get_reply(
            new_method_call(DUNST_CMD, "NotificationAction", "u", (0,)), timeout=5
        )
    )


@pytest.mark.desktop
def test_aabn_opens_the_order_in_the_caseworkers_system_on_dunst(
    on_desktop: Desktop, jeepney_with_links: JeepneyDesktop, opened: list[str]
) -> None:
    jeepney_with_links.show("Jobordre 42: Lager", "Ny status: Under behandling", 42)
    wait_until(lambda: on_desktop.service_owned(), 5, "dunst")
    time.sleep(0.2)  # dunst shows it on its next redraw
    _dunst_invoke_first_action(on_desktop)
    wait_until(lambda: opened, 10, "the order to be opened")
    assert opened == ["https://fagsystem.example/jobordre/42"]


@pytest.mark.desktop
def test_a_notification_about_several_orders_has_no_aabn(
    on_desktop: Desktop, jeepney_with_links: JeepneyDesktop, opened: list[str]
) -> None:
    jeepney_with_links.show("3 ændringer på 2 jobordrer", "Jobordre 1: …\nJobordre 2: …", None)
    time.sleep(0.2)
    _dunst_invoke_first_action(on_desktop)  # with an action attached, this would open it
    time.sleep(0.5)
    assert opened == []
    assert [item["summary"] for item in wait_for_history(on_desktop, 1)] == [
        "3 ændringer på 2 jobordrer"
    ]


# --- a second daemon: GNOME's notification-daemon ---------------------------------------------


def _require_notification_daemon() -> Path:
    if not os.access(NOTIFICATION_DAEMON, os.X_OK) or shutil.which("xdotool") is None:
        pytest.fail(
            "notification-daemon or xdotool is not installed: apt-get install "
            "notification-daemon xdotool (scripts/test installs them for you)"
        )
    return NOTIFICATION_DAEMON


@pytest.fixture
def gnome_daemon(desktop: Desktop, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desktop]:
    """The private desktop with notification-daemon instead of dunst."""
    for name, value in desktop.env.items():
        monkeypatch.setenv(name, value)
    if desktop.dunst is not None:
        desktop.stop_dunst()
    daemon = subprocess.Popen(
        [str(_require_notification_daemon()), "--replace"],
        env={**os.environ, **desktop.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(desktop.service_owned, 10, "notification-daemon to own the service")
        yield desktop
    finally:
        daemon.terminate()
        daemon.wait(10)
        wait_until(lambda: not desktop.service_owned(), 10, "notification-daemon to go")
        desktop.start_dunst()


def _click(desktop: Desktop, x: int, y: int) -> None:
    subprocess.run(
        ["xdotool", "mousemove", str(x), str(y), "click", "1"],
        env={**os.environ, **desktop.env},
        check=True,
        timeout=10,
    )


def _server_name(desktop: Desktop) -> str:
    reply = desktop.conn.send_and_get_reply(
        new_method_call(NOTIFICATIONS, "GetServerInformation"), timeout=5
    )
    return str(unwrap_msg(reply)[0])


@pytest.mark.desktop
@pytest.mark.parametrize(
    ("where", "what"),
    [
        # The popup sits in the top right corner of the 1024x600 screen.
        pytest.param((700, 50), "default", id="click-on-the-body"),
        pytest.param((940, 128), "open", id="the-aabn-button"),
    ],
)
def test_aabn_on_gnomes_notification_daemon(
    gnome_daemon: Desktop,
    jeepney_with_links: JeepneyDesktop,
    opened: list[str],
    where: tuple[int, int],
    what: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _server_name(gnome_daemon) == "Notification Daemon"
    jeepney_with_links.show(
        "Jobordre 42: Tømrer til renovering af skole",
        "Ny status: Inaktiveret – tilstrækkelige henvisninger",
        42,
    )
    caplog.set_level("INFO", logger="notifier")

    def clicked() -> bool:
        # Until the popup is drawn (a busy machine takes its time) a click hits nothing.
        _click(gnome_daemon, *where)
        return wait_until_or_none(lambda: opened, 1.0)

    wait_until(clicked, 30, f"action {what} to open the order", interval_s=0)
    assert opened == ["https://fagsystem.example/jobordre/42"]
    assert f"(action {what})" in caplog.text, "the intended control was clicked"


def wait_until_or_none(predicate: Any, timeout_s: float) -> bool:
    """Whether ``predicate`` became truthy within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False
