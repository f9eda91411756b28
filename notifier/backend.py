"""Where notifications go: the desktop (through plyer) behind one small interface.

plyer 2.1.0 on Linux picks its backend by itself and two of its three choices report
success when nothing was shown: the ``notify-send`` fallback ignores the exit code (no bus,
no daemon, a title starting with ``-``) and an existing ``/app`` directory sends everything
to the Flatpak portal unchecked. Only its dbus-python backend raises when delivery fails.
:class:`PlyerDesktop` therefore always uses that backend and turns every failure into
:class:`DeliveryFailed`; if dbus-python is missing it fails with an install hint rather
than fall back to a path that cannot tell success from silence.
"""

from __future__ import annotations

import html
import sys
from typing import Any, Protocol, TextIO

#: The name a desktop's notification service owns on the session bus.
NOTIFICATIONS_SERVICE = "org.freedesktop.Notifications"
#: The object path of that service.
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
#: The application name the desktop shows next to each notification.
APP_NAME = "jobordre"
#: How to get the one backend of plyer that reports failures.
INSTALL_HINT = (
    "install dbus-python: `pip install 'jobordre[desktop]'` (it builds from source and "
    "needs the Debian/Ubuntu packages libdbus-1-dev libglib2.0-dev pkg-config)"
)


class DeliveryFailed(Exception):
    """A notification did not reach a notification service; ``str()`` says why."""


class Desktop(Protocol):
    """Shows one notification, or raises :class:`DeliveryFailed`."""

    def show(self, title: str, body: str) -> None: ...


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

    def show(self, title: str, body: str) -> None:
        """Hand the notification to the service; :class:`DeliveryFailed` if it was not taken."""
        try:
            import dbus
            from plyer.platforms.linux.notification import NotifyDbus
        except ImportError:
            raise DeliveryFailed(f"dbus-python is not installed; {INSTALL_HINT}") from None
        # A title starting with "-" is harmless over D-Bus, but a leading space keeps it
        # from ever reading as an option should any other path see it.
        safe_title = f" {title}" if title.startswith("-") else title
        try:
            if self._body_markup(dbus):
                body = html.escape(body, quote=False)
            NotifyDbus().notify(
                title=safe_title,
                message=body,
                app_name=APP_NAME,
                # plyer takes seconds and multiplies by 1000 for the D-Bus call.
                timeout=max(self.display_ms // 1000, 1),
            )
        except dbus.exceptions.DBusException as error:
            name = error.get_dbus_name() or type(error).__name__
            detail = (error.get_dbus_message() or "").strip().splitlines()[:1]
            raise DeliveryFailed(
                "no notification service reachable on the D-Bus session bus "
                f"({': '.join([name, *detail])})"
            ) from None


class TerminalDesktop:
    """Prints each notification as one line: the fallback that always works."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def show(self, title: str, body: str) -> None:
        """Print ``title: body`` (a multi-line body is indented under the title)."""
        stream = self.stream or sys.stdout
        lines = body.splitlines() or [""]
        print(f"{title}: {lines[0]}", file=stream)
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

    def show(self, title: str, body: str) -> None:
        """Show on the desktop if possible, else on the fallback (never raises)."""
        try:
            self.primary.show(title, body)
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
