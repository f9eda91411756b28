"""The notifier's tray icon: its state, its menu, and what a click asks the notifier to do.

The contract, one way each:

* The notifier publishes a :class:`View` (connected / reconnecting / paused, the orders
  followed one by one, the last notification shown) to each :class:`Tray` through
  :meth:`Tray.update`. A tray never touches the notifier.
* A click becomes a :class:`Request` on :class:`Controls`, a thread-safe queue the
  notifier's own loop drains between two reads of the stream: pause, resume, show the
  recent notifications again, unfollow an order (the same ``unfollow`` command as the CLI),
  quit. "Åbn" needs no notifier: it opens the order's address (``JOBORDRE_ORDER_URL``) at
  once in the caseworker's browser.
* :func:`start_tray` gives a pystray icon where the desktop has a tray, else a
  :class:`NoTray` and one log line saying so.

pystray's Xorg backend (the one that speaks XEmbed to trays such as trayer, xfce4-panel or
LXQt's) shows no menu, and in 0.19.5 its icon window never even asks X for clicks (no
``ButtonPressMask``). There :class:`XMenu` asks for the icon's clicks on a connection of
its own and shows the menu as a small popup drawn with Pillow over python-xlib (pure
Python, like pystray itself). On backends with menus of their own (Windows, macOS,
AppIndicator) the same entries become pystray's native menu; those are not tested here.

This is the one module that uses pystray's internals: the Xorg icon's X connection
(``Icon._display``, to push changes out, :func:`_pushed`) and its window
(``Icon._window``, whose clicks :class:`XMenu` listens for), pinned on a real tray by
``tests/notifier/test_tray_pystray.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, NamedTuple, Protocol

from notifier.texts import Language, desktop_text

log = logging.getLogger("notifier")

#: How long :func:`start_tray` waits for a tray to appear (a panel started at login may
#: come up after the notifier, which runs meanwhile), in seconds.
TRAY_WAIT_S = 30.0
#: How long the tray may take to show the icon, in seconds.
ICON_SHOW_WAIT_S = 10.0
#: How often a change handed to pystray's X thread is pushed out again while it waits, in
#: seconds (:func:`_pushed`).
PUSH_INTERVAL_S = 0.05
#: How long the tray gets to embed the icon before the icon asks again, in seconds
#: (:meth:`PystrayTray.start`).
DOCK_ASK_AGAIN_S = 1.0
#: How often the icon looks whether the tray embedded it, in seconds.
DOCK_POLL_S = 0.1
#: The menu popup's window name: how a test or a screen reader finds it.
MENU_WINDOW_NAME = "Jobordre menu"
#: Height of one menu row and the padding around its text, in pixels.
ROW_HEIGHT_PX = 30
PADDING_PX = 14
#: The narrowest the menu popup is, in pixels.
MENU_MIN_WIDTH_PX = 240
#: The badge colour of each state on the icon.
BADGE = {"connected": "#2e9d44", "reconnecting": "#e08a00", "paused": "#8a8a8a"}


class State(StrEnum):
    """What the icon shows."""

    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    PAUSED = "paused"


@dataclass(frozen=True)
class View:
    """What a tray shows: published by the notifier whenever any of it changes."""

    state: State
    #: Orders followed one by one (the menu lists these; employers and "my placements"
    #: are follows too, but have no single order to open).
    orders: tuple[int, ...] = ()
    #: The title of the last notification shown, and when (ISO 8601, UTC).
    last_title: str | None = None
    last_at: str | None = None
    #: Whether Redis and the workers answer (``False`` while reconnecting).
    connected: bool = False


class Request(NamedTuple):
    """One thing asked from the menu."""

    kind: Literal["pause", "resume", "recent", "unfollow", "quit"]
    order_id: int | None = None


class Controls:
    """The menu's requests to the notifier, in the order they were made."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Request] = queue.SimpleQueue()
        #: Set by a "quit" request, so the notifier's loop stops without waiting for a turn.
        self.quitting = threading.Event()

    def request(self, kind: Request | str, order_id: int | None = None) -> None:
        """Ask the notifier for ``kind`` (on ``order_id``, for "unfollow")."""
        item = kind if isinstance(kind, Request) else Request(kind, order_id)  # type: ignore[arg-type]
        if item.kind == "quit":
            self.quitting.set()
        self._queue.put(item)

    def take(self) -> list[Request]:
        """Every request made since the last call."""
        taken: list[Request] = []
        while True:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                return taken


class Tray(Protocol):
    """Shows the notifier's state; its clicks go to :class:`Controls`."""

    def update(self, view: View) -> None:
        """Show ``view``."""
        ...

    def stop(self) -> None:
        """Take the icon off the tray."""
        ...


class NoTray:
    """No tray: the desktop has none (or no display at all)."""

    def update(self, view: View) -> None:
        """Nothing to show it on."""

    def stop(self) -> None:
        """Nothing to take away."""


@dataclass(frozen=True)
class Entry:
    """One menu entry: a heading (no action, no children), an action, or a submenu."""

    label: str
    action: Callable[[], None] | None = None
    children: tuple[Entry, ...] = ()

    @property
    def heading(self) -> bool:
        """Whether the entry only says something (it cannot be chosen)."""
        return self.action is None and not self.children


def menu_entries(
    view: View,
    language: Language,
    controls: Controls,
    open_order: Callable[[int], None] | None,
) -> tuple[Entry, ...]:
    """The tray's menu for ``view``: the state as heading, each order followed one by one
    (open it, unfollow it), pause or resume, the recent notifications, quit.
    ``open_order`` is ``None`` when no ``JOBORDRE_ORDER_URL`` says where orders open."""

    def text(key: str, **values: object) -> str:
        return desktop_text(key, language, **values)

    def order_entry(order_id: int) -> Entry:
        opens = () if open_order is None else (Entry(text("open"), lambda: open_order(order_id)),)
        return Entry(
            text("order_entry", id=order_id),
            children=(
                *opens,
                Entry(text("unfollow"), lambda: controls.request("unfollow", order_id)),
            ),
        )

    orders = tuple(order_entry(order_id) for order_id in view.orders) or (
        Entry(text("no_follows")),
    )
    pause = (
        Entry(text("resume"), lambda: controls.request("resume"))
        if view.state == State.PAUSED
        else Entry(text("pause"), lambda: controls.request("pause"))
    )
    return (
        Entry(text("tooltip", state=text(view.state.value))),
        *orders,
        pause,
        Entry(text("recent"), lambda: controls.request("recent")),
        Entry(text("quit"), lambda: controls.request("quit")),
    )


def icon_image(state: State) -> Any:
    """The package's icon with a badge for ``state`` (a pause sign when paused), on an
    opaque background: XEmbed trays take no transparency."""
    from PIL import Image, ImageDraw

    from notifier.backend import icon_path

    size = 64
    image = Image.new("RGB", (size, size), "#3c3c3c")
    with Image.open(icon_path()) as source:
        icon = source.convert("RGBA").resize((size, size))
    image.paste(icon, (0, 0), icon)
    draw = ImageDraw.Draw(image)
    badge = (size - 28, size - 28, size - 2, size - 2)
    draw.ellipse(badge, fill=BADGE[state.value], outline="white", width=2)
    if state == State.PAUSED:
        x0, y0 = badge[0], badge[1]
        draw.rectangle((x0 + 8, y0 + 7, x0 + 11, y0 + 19), fill="white")
        draw.rectangle((x0 + 15, y0 + 7, x0 + 18, y0 + 19), fill="white")
    return image


def _font(size: int) -> Any:
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


class XMenu:
    """The menu as a popup window on X, for trays that show none of their own.

    A click on the icon's window (any button) opens it at the pointer, one row per entry of
    ``entries()``; a row with children shows them in its place, an action closes the menu
    and runs; a click outside or Escape closes it. It runs on a thread and X connection of
    its own.
    """

    def __init__(self, icon_window: int, entries: Callable[[], tuple[Entry, ...]]) -> None:
        import Xlib.display
        from Xlib import X

        self.display = Xlib.display.Display()
        self.screen = self.display.screen()
        self.entries = entries
        self.font = _font(15)
        self.window: Any = None
        self.gc: Any = None
        self.page: tuple[Entry, ...] = ()
        self.hover: int | None = None
        self.above = False
        self.bottom = 0
        self.icon_window = icon_window
        # Only one client may ask for a window's button presses; pystray does not.
        icon = self.display.create_resource_object("window", icon_window)
        icon.change_attributes(event_mask=X.ButtonPressMask)
        self.display.sync()
        self._wake_read, self._wake_write = os.pipe()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="jobordre-menu")
        self._thread.start()

    def stop(self) -> None:
        """Close the menu and end its thread."""
        self._stopping = True
        os.write(self._wake_write, b".")
        self._thread.join(5)

    def _loop(self) -> None:
        try:
            while not self._stopping:
                while self.display.pending_events():
                    self._handle(self.display.next_event())
                ready, _, _ = select.select([self.display.fileno(), self._wake_read], [], [])
                if self._wake_read in ready:
                    os.read(self._wake_read, 64)
            self._close()
        except Exception:
            log.exception("the tray menu stopped")
        finally:
            self.display.close()
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _size(self, entries: Sequence[Entry]) -> tuple[int, int]:
        widths = [int(self.font.getlength(entry.label + "  ›")) for entry in entries]
        width = max([MENU_MIN_WIDTH_PX, *(w + 2 * PADDING_PX for w in widths)])
        return width, ROW_HEIGHT_PX * len(entries)

    def _open(self, entries: tuple[Entry, ...]) -> None:
        from Xlib import X

        self._close()
        width, height = self._size(entries)
        pointer = self.screen.root.query_pointer()
        screen_w, screen_h = self.screen.width_in_pixels, self.screen.height_in_pixels
        x = max(0, min(pointer.root_x - width // 2, screen_w - width))
        below = pointer.root_y + 8
        # Above the pointer when there is no room below (a panel at the bottom): then a
        # submenu keeps the bottom edge, next to the icon.
        self.above = below + height > screen_h
        y = max(0, pointer.root_y - height - 8) if self.above else below
        self.bottom = y + height
        self.window = self.screen.root.create_window(
            x, y, width, height, 1, self.screen.root_depth,
            X.InputOutput, X.CopyFromParent,
            override_redirect=True,
            background_pixel=self.screen.white_pixel,
            border_pixel=self.screen.black_pixel,
            event_mask=(
                X.ExposureMask | X.ButtonPressMask | X.ButtonReleaseMask
                | X.PointerMotionMask | X.KeyPressMask
            ),
        )  # fmt: skip
        self.window.set_wm_name(MENU_WINDOW_NAME)
        self.gc = self.window.create_gc()
        self.page, self.hover = entries, None
        self.window.map()
        self.display.sync()
        mask = X.ButtonPressMask | X.ButtonReleaseMask | X.PointerMotionMask
        for _ in range(20):
            # A grab fails while the click that opened the menu still holds the pointer.
            grabbed = self.window.grab_pointer(
                True, mask, X.GrabModeAsync, X.GrabModeAsync, X.NONE, X.NONE, X.CurrentTime
            )
            if grabbed == X.GrabSuccess:
                break
            time.sleep(0.02)
        self.window.grab_keyboard(True, X.GrabModeAsync, X.GrabModeAsync, X.CurrentTime)
        self._draw()

    def _show_page(self, entries: tuple[Entry, ...]) -> None:
        width, height = self._size(entries)
        if self.above:
            self.window.configure(y=max(0, self.bottom - height), width=width, height=height)
        else:
            self.window.configure(width=width, height=height)
        self.page, self.hover = entries, None
        self._draw()

    def _close(self) -> None:
        from Xlib import X

        if self.window is None:
            return
        self.display.ungrab_pointer(X.CurrentTime)
        self.display.ungrab_keyboard(X.CurrentTime)
        self.window.destroy()
        self.display.sync()
        self.window = None

    def _draw(self) -> None:
        from PIL import Image, ImageDraw

        if self.window is None:
            return
        width, height = self._size(self.page)
        image = Image.new("RGB", (width, height), "#f6f6f6")
        draw = ImageDraw.Draw(image)
        for row, entry in enumerate(self.page):
            top = row * ROW_HEIGHT_PX
            if entry.heading:
                draw.rectangle((0, top, width, top + ROW_HEIGHT_PX - 1), fill="#dde3ea")
            elif row == self.hover:
                draw.rectangle((0, top, width, top + ROW_HEIGHT_PX - 1), fill="#2a64b4")
            colour = "white" if row == self.hover and not entry.heading else "#1d1d1d"
            label = f"{entry.label}  ›" if entry.children else entry.label
            draw.text((PADDING_PX, top + 6), label, fill=colour, font=self.font)
        # python-xlib 0.33 asks the image for ``tostring``, Pillow has ``tobytes``.
        image.tostring = image.tobytes  # type: ignore[attr-defined]
        self.window.put_pil_image(self.gc, 0, 0, image)
        self.display.flush()

    def _row(self, event: Any) -> int | None:
        width, height = self._size(self.page)
        if not (0 <= event.event_x < width and 0 <= event.event_y < height):
            return None
        return int(event.event_y // ROW_HEIGHT_PX)

    def _handle(self, event: Any) -> None:
        from Xlib import XK, X

        if self.window is None:
            if event.type == X.ButtonPress and event.window.id == self.icon_window:
                self._open(self.entries())
            return
        if event.type == X.Expose:
            self._draw()
        elif event.type == X.MotionNotify:
            row = self._row(event)
            if row != self.hover:
                self.hover = row
                self._draw()
        elif event.type == X.KeyPress:
            if self.display.keycode_to_keysym(event.detail, 0) == XK.XK_Escape:
                self._close()
        elif event.type == X.ButtonPress:
            row = self._row(event)
            if row is None:
                self._close()
                return
            entry = self.page[row]
            if entry.children:
                self._show_page((Entry(entry.label), *entry.children))
            elif entry.action is not None:
                self._close()
                try:
                    entry.action()
                except Exception:  # the menu outlives a failing action (a browser that fails)
                    log.exception("the menu entry %r failed", entry.label)


@contextlib.contextmanager
def _pushed(icon: Any) -> Iterator[None]:
    """Keep pushing out ``icon``'s X requests while a change to it runs, and once after.

    pystray's Xorg icon hands every change (shown, image, tooltip, stop) to its own thread
    as an X message and waits for it, and that thread's own requests (the new window name)
    are queued the same way. python-xlib sends a thread's queued requests only while some
    thread is sending: one queued while the X thread waits for events, on an icon where
    nothing happens, stays unsent, and the change never shows, or waits for ever. Found
    under load, in the desktop tests: the tooltip stayed "forbinder igen" while the
    notifier was connected. A flush from here sends what is queued."""
    display = getattr(icon, "_display", None)  # pystray's Xorg icon; others have none
    if display is None:
        yield
        return
    done = threading.Event()

    def push() -> None:
        while not done.wait(PUSH_INTERVAL_S):
            with contextlib.suppress(Exception):  # a closed display: nothing left to push
                display.flush()

    pusher = threading.Thread(target=push, daemon=True, name="jobordre-tray-push")
    pusher.start()
    try:
        yield
    finally:
        done.set()
        pusher.join()
        with contextlib.suppress(Exception):
            display.flush()


def _embedded(display: Any, window_id: int) -> bool:
    """Whether a tray embedded the X window ``window_id`` (its parent is no longer the
    root window), asked on ``display``, a python-xlib connection not pystray's."""
    import Xlib.error

    try:
        tree = display.create_resource_object("window", window_id).query_tree()
        return bool(tree.parent.id != tree.root.id)
    except Xlib.error.XError:  # the window is gone
        return False


@dataclass
class PystrayTray:
    """The notifier's icon in the desktop's tray, through pystray."""

    language: Language
    controls: Controls
    open_order: Callable[[int], None] | None
    icon: Any = None
    menu: XMenu | None = None
    view: View = field(default_factory=lambda: View(State.RECONNECTING))

    def start(self) -> None:
        """Put the icon in the tray and wait until it shows (pystray runs its own thread).

        Not ``run_detached``: on Xorg that starts pystray's setup twice and one of the two
        waits forever; and a tooltip set before the icon shows is never applied."""
        import pystray

        self.icon = pystray.Icon(
            "jobordre",
            icon_image(self.view.state),
            desktop_text(
                "tooltip",
                self.language,
                state=desktop_text(self.view.state.value, self.language),
            ),
            menu=pystray.Menu(self._native_items),
        )
        shown = threading.Event()

        def setup(icon: Any) -> None:
            with _pushed(icon):
                icon.visible = True
            shown.set()

        threading.Thread(
            target=self.icon.run, args=(setup,), daemon=True, name="jobordre-tray-icon"
        ).start()
        if not shown.wait(ICON_SHOW_WAIT_S):
            raise RuntimeError("the tray did not show the icon")
        if not self.icon.HAS_MENU:
            self._dock()
            self.menu = XMenu(self.icon._window.id, self.entries)

    def _dock(self) -> None:
        """Ask the tray again until it embeds the icon (Xorg).

        pystray asks once. A tray that has just taken the system-tray selection can drop a
        request that arrives before it listens: at login, when the panel and the notifier
        start together, and in the tests, where most icons started at once with trayer
        were never embedded. XEmbed's icons are meant to ask again when the tray announces
        itself, which pystray does not listen for; asking again until embedded does the
        same. Without a tray that embeds it within :data:`ICON_SHOW_WAIT_S`, one log line
        says so and the notifier runs on."""
        import Xlib.display

        window = self.icon._window.id
        deadline = time.monotonic() + ICON_SHOW_WAIT_S
        asked = time.monotonic()
        display = Xlib.display.Display()
        try:
            while not _embedded(display, window):
                now = time.monotonic()
                if now >= deadline:
                    log.warning(
                        "no tray icon: the tray did not embed it within %.0f s"
                        " (restart the notifier to try again)",
                        ICON_SHOW_WAIT_S,
                    )
                    return
                if now - asked >= DOCK_ASK_AGAIN_S:
                    with _pushed(self.icon):
                        self.icon.visible = False
                        self.icon.visible = True
                    asked = time.monotonic()
                time.sleep(DOCK_POLL_S)
        finally:
            display.close()

    def _native_items(self) -> list[Any]:
        """The menu's entries as pystray items (for backends with menus of their own)."""
        import pystray

        def item(entry: Entry) -> Any:
            if entry.children:
                return pystray.MenuItem(
                    entry.label, pystray.Menu(*(item(child) for child in entry.children))
                )
            action = entry.action
            return pystray.MenuItem(
                entry.label, (lambda: action()) if action else None, enabled=action is not None
            )

        return [item(entry) for entry in self.entries()]

    def entries(self) -> tuple[Entry, ...]:
        """The menu for the current view."""
        return menu_entries(self.view, self.language, self.controls, self.open_order)

    def update(self, view: View) -> None:
        """Show ``view``: a new badge and tooltip when the state changed, the menu anew."""
        before, self.view = self.view, view
        if self.icon is None:
            return
        with _pushed(self.icon):
            if view.state != before.state:
                self.icon.icon = icon_image(view.state)
                self.icon.title = desktop_text(
                    "tooltip", self.language, state=desktop_text(view.state.value, self.language)
                )
            self.icon.update_menu()

    def stop(self) -> None:
        """Close the menu and take the icon off the tray."""
        if self.menu is not None:
            self.menu.stop()
        if self.icon is not None:
            with _pushed(self.icon):
                self.icon.stop()


def tray_host_present(display_name: str | None = None) -> bool:
    """Whether an X tray owns this screen's system-tray selection (XEmbed)."""
    import Xlib.display
    from Xlib import X

    display = Xlib.display.Display(display_name)
    try:
        atom = display.intern_atom(f"_NET_SYSTEM_TRAY_S{display.get_default_screen()}")
        return bool(display.get_selection_owner(atom) != X.NONE)
    finally:
        display.close()


class WaitingTray:
    """A tray that appears once the desktop's tray does: a panel started at login may come
    up after the notifier, which should not wait for it. Until then (and for good, after
    ``wait_s`` without one, said in one log line) views go nowhere; the last one is shown
    as soon as the icon is there."""

    def __init__(
        self, make: Callable[[], Tray], present: Callable[[], bool], wait_s: float
    ) -> None:
        self._make = make
        self._present = present
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._tray: Tray | None = None
        self._view: View | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._wait, daemon=True, name="jobordre-tray")
        self._thread.start()

    def _wait(self) -> None:
        deadline = time.monotonic() + self._wait_s
        try:
            while not self._present():
                if self._stopped.wait(0.2):
                    return
                if time.monotonic() >= deadline:
                    log.warning("no tray icon: this desktop has no system tray (XEmbed)")
                    return
            tray = self._make()
        except Exception as error:  # pystray and python-xlib raise their own errors
            log.warning("no tray icon: %s (%s)", error, type(error).__name__)
            return
        with self._lock:
            if self._stopped.is_set():
                tray.stop()
                return
            self._tray = tray
            if self._view is not None:
                tray.update(self._view)

    def update(self, view: View) -> None:
        """Show ``view`` once the icon is there."""
        with self._lock:
            self._view = view
            if self._tray is not None:
                self._tray.update(view)

    def stop(self) -> None:
        """Stop waiting, or take the icon away."""
        with self._lock:
            self._stopped.set()
            tray, self._tray = self._tray, None
        if tray is not None:
            tray.stop()
        self._thread.join(5)


def start_tray(
    language: Language,
    controls: Controls,
    open_order: Callable[[int], None] | None,
    wait_s: float = TRAY_WAIT_S,
) -> Tray:
    """The icon in the desktop's tray as soon as there is one; :class:`NoTray`, with one
    log line, where the desktop has none (no X display, no tray within ``wait_s``)."""

    def make() -> Tray:
        tray = PystrayTray(language, controls, open_order)
        tray.start()
        return tray

    if not sys.platform.startswith("linux"):
        try:
            return make()
        except Exception as error:  # pystray raises what its platform's backend raises
            log.warning("no tray icon: %s", error)
            return NoTray()
    if not os.environ.get("DISPLAY"):
        log.warning("no tray icon: no X display (DISPLAY is not set)")
        return NoTray()
    return WaitingTray(make, tray_host_present, wait_s)
