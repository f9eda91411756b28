"""Where notifications go: the desktop, behind one small interface (:class:`Desktop`).

On Linux the desktop's notification service is a D-Bus service. Two ways reach it, and
both report a notification that was not taken as :class:`DeliveryFailed`:

* :class:`JeepneyDesktop`, pure Python (jeepney), so a caseworker's machine needs no C
  compiler: the default. It sends the application name "Jobordre", the icon shipped in
  the package and, where the service offers actions and ``JOBORDRE_ORDER_URL`` is set, an
  "Åbn" action that opens the order in the caseworker's own system.
* :class:`PlyerDesktop`, plyer's dbus-python backend, when dbus-python is installed
  (``jobordre[desktop]``).

plyer 2.1.0 on Linux picks its backend by itself and two of its three choices report
success when nothing was shown: the ``notify-send`` fallback ignores the exit code (no bus,
no daemon, a title starting with ``-``) and an existing ``/app`` directory sends everything
to the Flatpak portal unchecked. So on Linux plyer is only ever asked for its dbus-python
backend; elsewhere (macOS, Windows) :class:`NativeDesktop` uses plyer's native backend.
"""

from __future__ import annotations

import contextlib
import html
import importlib.util
import logging
import queue
import sys
import threading
import webbrowser
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

from shared.errors import InvalidInput, JobordreError
from shared.redaction import escape_controls

log = logging.getLogger("notifier")

#: The name a desktop's notification service owns on the session bus.
NOTIFICATIONS_SERVICE = "org.freedesktop.Notifications"
#: The object path of that service.
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
#: The application name the desktop shows next to each notification.
APP_NAME = "Jobordre"
#: The actions that open the order: a click on the notification ("default") and an
#: "Åbn" button (daemons show the default action as no button).
OPEN_ACTIONS = ("default", "open")
#: The label of both.
OPEN_LABEL = "Åbn"
#: How long a notification service may take to answer, in seconds (dbus-python: 25 s).
REPLY_TIMEOUT_S = 10.0
#: How the one backend of plyer that reports failures is installed.
INSTALL_HINT = (
    "install dbus-python: `pip install 'jobordre[desktop]'` (it builds from source and "
    "needs the Debian/Ubuntu packages libdbus-1-dev libglib2.0-dev pkg-config)"
)


def icon_path() -> str:
    """The absolute path of the icon shipped in the package."""
    return str(Path(str(resources.files("notifier") / "data" / "jobordre.png")).resolve())


def order_link(template: str | None, order_id: int | None) -> str | None:
    """The order's address in the caseworker's own system, from ``JOBORDRE_ORDER_URL``."""
    if template is None or order_id is None:
        return None
    return template.replace("{id}", str(order_id))


def check_order_url(template: str | None) -> None:
    """:class:`InvalidInput` unless ``template`` is unset or an http(s) URL with ``{id}``."""
    if template is None:
        return
    if "{id}" not in template or urlsplit(template).scheme not in ("http", "https"):
        raise InvalidInput(
            "JOBORDRE_ORDER_URL: an http(s) address with {id} where the order id goes, "
            "e.g. https://fagsystem.example/jobordre/{id}",
            field="JOBORDRE_ORDER_URL",
        )


class DeliveryFailed(JobordreError):
    """A notification did not reach a notification service; ``str()`` says why."""


class Desktop(Protocol):
    """Shows one notification, or raises :class:`DeliveryFailed`. ``order_id`` is the
    one order the notification is about, if it is about one."""

    def show(self, title: str, body: str, order_id: int | None = None) -> None: ...


def _no_service(name: str, detail: str) -> DeliveryFailed:
    return DeliveryFailed(
        f"no notification service reachable on the D-Bus session bus ({name}: {detail})"
        if detail
        else f"no notification service reachable on the D-Bus session bus ({name})"
    )


def _safe_title(title: str) -> str:
    # A title starting with "-" is harmless over D-Bus, but a leading space keeps it from
    # ever reading as an option should any other path see it.
    return f" {title}" if title.startswith("-") else title


class JeepneyDesktop:
    """The desktop's notification service over D-Bus, in pure Python (jeepney).

    One connection to the session bus, opened on first use and again after it broke. When
    actions are on (an ``order_url``), a thread listens for the service's
    ``ActionInvoked`` signals and opens the order of the notification whose "Åbn" was
    chosen with ``opener`` (the caseworker's web browser).
    """

    def __init__(
        self,
        display_ms: int = 10_000,
        order_url: str | None = None,
        opener: Callable[[str], object] = webbrowser.open,
    ) -> None:
        self.display_ms = display_ms
        self.order_url = order_url
        self.opener = opener
        self._router: Any = None
        self._links: dict[int, str] = {}
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        from jeepney import MatchRule
        from jeepney.bus_messages import message_bus
        from jeepney.io.threading import DBusRouter, open_dbus_connection

        if self._router is None:
            router = self._router = DBusRouter(open_dbus_connection(bus="SESSION"))
            if self.order_url is not None:
                rule = MatchRule(
                    type="signal", interface=NOTIFICATIONS_SERVICE, path=NOTIFICATIONS_PATH
                )
                signals: queue.Queue[Any] = queue.Queue()
                router.filter(rule, queue=signals)
                router.send_and_get_reply(message_bus.AddMatch(rule), timeout=REPLY_TIMEOUT_S)
                threading.Thread(
                    target=self._listen, args=(router, signals), daemon=True,
                    name="jobordre-notifier-actions",
                ).start()  # fmt: skip
        return self._router

    def _call(self, method: str, signature: str | None = None, body: tuple[Any, ...] = ()) -> Any:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import unwrap_msg

        address = DBusAddress(
            NOTIFICATIONS_PATH, bus_name=NOTIFICATIONS_SERVICE, interface=NOTIFICATIONS_SERVICE
        )
        message = new_method_call(address, method, signature, body)
        reply = self._connect().send_and_get_reply(message, timeout=REPLY_TIMEOUT_S)
        return unwrap_msg(reply)

    def show(self, title: str, body: str, order_id: int | None = None) -> None:
        """Hand the notification to the service; :class:`DeliveryFailed` if it was not taken."""
        from jeepney.wrappers import DBusErrorResponse

        try:
            (capabilities,) = self._call("GetCapabilities")
            if "body-markup" in capabilities:
                body = html.escape(body, quote=False)
            link = order_link(self.order_url, order_id)
            offered = link is not None and "actions" in capabilities
            actions = [x for key in OPEN_ACTIONS for x in (key, OPEN_LABEL)] if offered else []
            hints = {"desktop-entry": ("s", "jobordre"), "image-path": ("s", icon_path())}
            with self._lock:
                (notification_id,) = self._call(
                    "Notify",
                    "susssasa{sv}i",
                    (APP_NAME, 0, icon_path(), _safe_title(title), body, actions, hints,
                     self.display_ms),
                )  # fmt: skip
                if actions and link:
                    self._links[int(notification_id)] = link
        except DBusErrorResponse as error:
            detail = str(error.data[0]).strip().splitlines()[:1] if error.data else []
            raise _no_service(error.name, "".join(detail)) from None
        except KeyError:
            raise _no_service("no session bus", "DBUS_SESSION_BUS_ADDRESS is not set") from None
        except (OSError, TimeoutError, ValueError) as error:
            # The bus is gone or never was: connect afresh next time.
            self.close()
            raise _no_service(type(error).__name__, str(error)) from None

    def _listen(self, router: Any, signals: queue.Queue[Any]) -> None:
        from jeepney import HeaderFields

        while self._router is router:
            try:
                message = signals.get(timeout=1)
            except queue.Empty:
                continue
            member = message.header.fields.get(HeaderFields.member)
            notification_id = int(message.body[0])
            action = str(message.body[1]) if member == "ActionInvoked" else None
            with self._lock:
                if action in OPEN_ACTIONS:
                    link = self._links.pop(notification_id, None)
                else:
                    link = None
                    if member == "NotificationClosed":
                        self._links.pop(notification_id, None)
            if link is not None:
                log.info("opening a job order in the browser (action %s)", action)
                self.opener(link)

    def close(self) -> None:
        """Close the bus connection (the next :meth:`show` opens a new one)."""
        router, self._router = self._router, None
        if router is not None:
            with contextlib.suppress(Exception):
                router.close()
                router.conn.close()


class PlyerDesktop:
    """The desktop's notification service over D-Bus, through plyer's dbus backend."""

    def __init__(self, display_ms: int = 10_000) -> None:
        self.display_ms = display_ms
        self._markup: bool | None = None

    def _body_markup(self, dbus: Any) -> bool:
        """Whether the service reads bodies as markup (then ``&`` and ``<`` in an order
        title must be escaped); asked once, plyer has no call for it."""
        if self._markup is None:
            service = dbus.SessionBus().get_object(NOTIFICATIONS_SERVICE, NOTIFICATIONS_PATH)
            capabilities = service.GetCapabilities(dbus_interface=NOTIFICATIONS_SERVICE)
            self._markup = "body-markup" in [str(c) for c in capabilities]
        return self._markup

    def show(self, title: str, body: str, order_id: int | None = None) -> None:
        """Hand the notification to the service; :class:`DeliveryFailed` if it was not taken.
        (No "Åbn" action: plyer's call takes none.)"""
        try:
            import dbus
            from plyer.platforms.linux.notification import NotifyDbus
        except ImportError:
            raise DeliveryFailed(f"dbus-python is not installed; {INSTALL_HINT}") from None
        try:
            if self._body_markup(dbus):
                body = html.escape(body, quote=False)
            NotifyDbus().notify(
                title=_safe_title(title),
                message=body,
                app_name=APP_NAME,
                app_icon=icon_path(),
                # plyer takes seconds and multiplies by 1000 for the D-Bus call.
                timeout=max(self.display_ms // 1000, 1),
            )
        except dbus.exceptions.DBusException as error:
            name = error.get_dbus_name() or type(error).__name__
            detail = (error.get_dbus_message() or "").strip().splitlines()[:1]
            raise _no_service(name, "".join(detail)) from None


class NativeDesktop:
    """plyer's own backend where it has a native one (macOS, Windows)."""

    def __init__(self, display_ms: int = 10_000) -> None:
        self.display_ms = display_ms

    def show(self, title: str, body: str, order_id: int | None = None) -> None:
        """Show through plyer; :class:`DeliveryFailed` if plyer raises."""
        from plyer import notification

        try:
            notification.notify(
                title=title,
                message=body,
                app_name=APP_NAME,
                app_icon=icon_path(),
                timeout=max(self.display_ms // 1000, 1),
            )
        except Exception as error:  # plyer's backends raise what their platform raises
            raise DeliveryFailed(f"the desktop refused the notification ({error})") from None


def desktop_backend(display_ms: int, order_url: str | None = None) -> Desktop:
    """The desktop of this platform: plyer's native backend off Linux; on Linux plyer's
    dbus-python backend if dbus-python is installed, else the pure-Python one."""
    if not sys.platform.startswith("linux"):
        return NativeDesktop(display_ms)
    if importlib.util.find_spec("dbus") is not None and order_url is None:
        return PlyerDesktop(display_ms)
    return JeepneyDesktop(display_ms, order_url)


class TerminalDesktop:
    """Prints each notification as one line: the fallback that always works."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def show(self, title: str, body: str, order_id: int | None = None) -> None:
        """Print ``title: body`` (a multi-line body is indented under the title).

        Control characters in the title, and in each line of the body, are written out:
        a title from a store older than the check on input cannot clear the terminal,
        plant a link or fake a line of its own.
        """
        stream = self.stream or sys.stdout
        lines = [escape_controls(line) for line in body.split("\n")]
        print(f"{escape_controls(title)}: {lines[0]}", file=stream)
        for line in lines[1:]:
            print(f"  {line}", file=stream)
        stream.flush()


class FallbackDesktop:
    """Shows on ``primary``; when it fails, says so once and shows on ``fallback``.

    The primary is tried again for every notification, so notifications return to the
    desktop by themselves once a notification service appears; the warning is repeated only
    after the desktop worked again and then failed again.
    """

    def __init__(self, primary: Desktop, fallback: Desktop, warn: TextIO | None = None) -> None:
        self.primary = primary
        self.fallback = fallback
        self.warn = warn
        self.failing = False

    def show(self, title: str, body: str, order_id: int | None = None) -> None:
        """Show on the desktop if possible, else on the fallback (never raises)."""
        try:
            self.primary.show(title, body, order_id)
        except DeliveryFailed as error:
            if not self.failing:
                self.failing = True
                print(
                    f"jobordre notifier: cannot show desktop notifications: {error}. "
                    "Notifications are printed here instead.",
                    file=self.warn or sys.stderr,
                    flush=True,
                )
            self.fallback.show(title, body)
            return
        if self.failing:
            self.failing = False
            print(
                "jobordre notifier: desktop notifications work again.",
                file=self.warn or sys.stderr,
                flush=True,
            )
