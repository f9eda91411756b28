"""The notifier's loop: catch up, then show each followed change as it happens.

Two sources, one cursor. The Redis stream carries every event's header the moment the relay
pushes it: fast, but at-least-once, lost if Redis restarts, and **not authenticated**:
whoever can write to Redis can add a header. So a header only wakes the notifier; what it
shows comes from the inbox query, whose reply is the foundation's, signed and sealed for
this organisation. The notifier keeps ``received``, the seq up to which the inbox has
listed every event of this organisation, and ``epoch``, the identity of the log that seq
counts in; only an inbox reply moves them. A header that reaches this organisation beyond
``received`` (or of another epoch) makes the notifier ask the inbox what is new; a header
at or below it is a duplicate and dropped. A forged header therefore shows nothing (the
inbox does not list it) and hides nothing (the cursor never moves past an event the inbox
has not listed). A stream that ends below the cursor (a Redis that came back with an older
stream) is no reason to move the cursor back.

What the screen has shown is never shown again: the stored cursor is written *before* a
notification is handed to the desktop, and never past a change still waiting to be shown.

The desktop program around it (:mod:`notifier.tray`) sees the notifier through
:class:`~notifier.tray.View` s published to its trays (connected / reconnecting / paused,
the orders followed, the last notification) and asks through
:class:`~notifier.tray.Controls`, drained at the start of each turn of the loop. While
paused, followed changes stay held (so the stored cursor stays before them: quitting while
paused loses none, the next start shows them as its catch-up); on resume, by hand or after
``pause_s``, they come as ONE summary.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Literal

from notifier.backend import Desktop
from notifier.coalesce import Coalescer
from notifier.cursor import CursorFile
from notifier.digest import Digest
from notifier.follow import Follows
from notifier.source import INBOX_PAGE, STREAM_START, EventStream, Signal, WorkerQueries, went_back
from notifier.texts import Language, desktop_text, notification_for
from notifier.tray import Controls, State, Tray, View
from shared.errors import JobordreError, Unavailable
from shared.events import Cursor, EventHeader

log = logging.getLogger(__name__)

#: Longest a read of the stream blocks, so a stop request is noticed within this.
IDLE_BLOCK_S = 1.0
#: The cursor file is rewritten at most this often while only unfollowed changes arrive.
SAVE_EVERY_S = 1.0
#: First wait before reconnecting; it doubles up to the ``reconnect_max_s`` setting.
RECONNECT_FIRST_S = 0.1
#: How long "Pause i 1 time" pauses, in seconds.
PAUSE_S = 3600.0
#: How many of the last notifications "Vis seneste" shows again.
RECENT_KEPT = 3


class Notifier:
    """One caseworker's notifier: wire it with real or fake parts and call :meth:`run`."""

    def __init__(
        self,
        *,
        foundation: WorkerQueries,
        stream: EventStream,
        desktop: Desktop,
        cursor_file: CursorFile,
        principal: str,
        caseworker: str,
        language: Language = "da",
        quiet_s: float = 0.3,
        burst_s: float = 3.0,
        follows_refresh_s: float = 30.0,
        reconnect_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        controls: Controls | None = None,
        trays: Sequence[Tray] = (),
        pause_s: float = PAUSE_S,
    ) -> None:
        self.foundation = foundation
        self.stream = stream
        self.desktop = desktop
        self.cursor_file = cursor_file
        self.caseworker = caseworker
        self.language: Language = language
        self.coalescer = Coalescer(quiet_s, burst_s)
        self.follows = Follows(principal)
        self.follows_refresh_s = follows_refresh_s
        self.reconnect_max_s = reconnect_max_s
        self.clock = clock
        self.sleep = sleep
        #: Every event up to this seq has been seen (``None`` until the first sync).
        self.received: int | None = None
        #: The identity of the event log ``received`` counts in (``None``: not known, as
        #: for a cursor stored before logs had one).
        self.epoch: str | None = None
        #: Stream id to read after.
        self.stream_id = STREAM_START
        self._saved: Cursor | None = None
        self._saved_at = 0.0
        self._follows_at = 0.0
        self.controls = controls or Controls()
        self.trays = tuple(trays)
        self.pause_s = pause_s
        #: When the pause ends (on :attr:`clock`), ``None`` while not paused.
        self.paused_until: float | None = None
        #: Whether Redis and the workers answered last time they were asked.
        self.connected = False
        #: The last notifications shown: (title, body, order id), the newest last.
        self.recent: deque[tuple[str, str, int | None]] = deque(maxlen=RECENT_KEPT)
        self.last_at: str | None = None
        self._published: View | None = None

    # --- the parts of a run ---------------------------------------------------------------

    def start(self) -> None:
        """Load the cursor, read the follows and show one catch-up summary of what changed
        while the notifier was off. On the very first run it starts from now instead."""
        stored = self.cursor_file.load()
        self._saved = stored
        self.refresh_follows()
        if stored is None:
            log.info("first run: notifying changes from now on")
            self._start_from_now()
        else:
            self.epoch = stored.epoch
            self.sync(stored.seq, show="catch_up")
        self.connected = True
        self.publish()
        log.info("caught up to event %s; watching for changes", self.received)

    def _start_from_now(self) -> None:
        """Take the end of the log as the cursor, reading no event: one inbox call for a
        single event, whose reply names the log's ``head``."""
        stream_id, stream_seq, stream_epoch = self.stream.tail()
        page = self.foundation.inbox(str(Cursor(0)), 1)
        head = page.get("head")
        # Workers from before the reply had a head: the stream's end will do.
        cursor = Cursor.parse(head) if head else Cursor(stream_seq or 0, stream_epoch)
        self.stream_id = stream_id
        self.received, self.epoch = cursor.seq, cursor.epoch
        self._save(force=True)

    def refresh_follows(self) -> None:
        """Re-read what the caseworker follows (follows change from other terminals)."""
        result = self.foundation.following(self.caseworker)
        placed = self.follows.placed_orders
        self.follows = Follows.from_result(self.follows.principal, result)
        # Orders placed on since the query's snapshot stay followed.
        self.follows.placed_orders |= placed
        self._follows_at = self.clock()
        self.publish()
        if self.follows.empty:
            log.warning(
                "this caseworker follows nothing yet: `jobordre follow ORDER_ID "
                "--caseworker ID --as %s` (or --employer CVR, or --placements)",
                self.follows.principal,
            )

    def sync(self, since: int, *, show: Literal["catch_up", "live"]) -> None:
        """Read every event after ``since`` (in the log of ``epoch``) from the inbox, then
        go on from the stream's current end. What matched is shown as one catch-up summary
        now (``catch_up``) or joins the live flow (``live``, after a reconnect)."""
        # The stream's end is taken first: a header pushed while the inbox is read is then
        # read afterwards (a duplicate, dropped) rather than missed.
        stream_id, _, _ = self.stream.tail()
        caught_up = Digest()
        if show == "catch_up":
            hold: Callable[[EventHeader], None] = caught_up.add
        else:
            now = self.clock()

            def hold(event: EventHeader) -> None:
                self.coalescer.add(event, now)

        received = self._inbox_after(since, hold, held_live=show == "live")
        self.stream_id = stream_id
        self.received = received
        if show == "live":
            return
        self._save(force=True)
        if caught_up:
            self._show(caught_up, catch_up=True)
            self.coalescer.shown(self.clock())

    def step(self) -> None:
        """One turn of the live loop: do what the menu asked, show what is due (unless
        paused), then wait for the stream."""
        self.handle_requests()
        now = self.clock()
        if self.paused_until is not None and now >= self.paused_until:
            self.resume()
        if self.paused_until is None:
            batch = self.coalescer.take(now)
            if batch:
                self._show(batch, catch_up=False)
        if now - self._follows_at >= self.follows_refresh_s:
            self.refresh_follows()
            self._check_stream_reset()
        self._save()
        due = self.coalescer.due_at() if self.paused_until is None else self.paused_until
        block_s = IDLE_BLOCK_S if due is None else min(IDLE_BLOCK_S, max(due - now, 0.001))
        signals: list[Signal] = []
        for stream_id, signal in self.stream.read(self.stream_id, int(block_s * 1000)):
            self.stream_id = stream_id
            if signal is not None:
                signals.append(signal)
        self.receive(signals)

    def receive(self, headers: Iterable[Signal]) -> None:
        """Take headers from the stream as a wake-up: if one of them reaches this
        organisation and is new (beyond ``received``, or of another log), ask the inbox
        once what is new, and hold what it lists. A header itself is never shown and never
        moves the cursor: it is not authenticated (see the module docstring)."""
        received = self.received or 0
        principal = self.follows.principal
        if any(
            header.reaches(principal)
            and (
                header.seq > received
                or bool(header.epoch and self.epoch and header.epoch != self.epoch)
            )
            for header in headers
        ):
            # Another log (a restored or new store) is resolved by the inbox too: it says
            # where that log parts from ours and lists what is new since.
            log.info("woken after event %s; asking the inbox what is new", received)
            self._fill_from_inbox(received)

    def _fill_from_inbox(self, since: int) -> None:
        now = self.clock()
        self.received = self._inbox_after(
            since, lambda event: self.coalescer.add(event, now), held_live=True
        )

    def run(self, stop: Callable[[], bool]) -> None:
        """Catch up (unless :meth:`start` ran already), then loop until ``stop()``.

        Reconnects by itself whenever Redis or the workers are gone, without showing
        anything twice or losing a change."""
        quitting = self.controls.quitting

        def stopping() -> bool:
            return quitting.is_set() or stop()

        self.publish()
        if self.received is None:
            self._until_connected(self.start, stopping)
        while not stopping():
            try:
                self.step()
            except Unavailable as error:
                log.warning("lost the connection: %s; reconnecting", error.message)
                self.connected = False
                self.publish()
                self._until_connected(self._resync, stopping)
            except JobordreError as error:
                # One read refused, as a read whose reply a broker failover lost is when
                # its redelivery comes (its id is a replay): nothing is lost, the inbox is
                # asked again under a new id. A refusal that lasts (a revoked key) stops
                # the notifier at the resync, as it does at the start.
                log.warning("the workers refused a read (%s); catching up again", error.message)
                self._until_connected(self._resync, stopping)
        self._save(force=True)

    # --- the desktop program's side ----------------------------------------------------------

    @property
    def view(self) -> View:
        """What the trays show now."""
        if self.paused_until is not None:
            state = State.PAUSED
        else:
            state = State.CONNECTED if self.connected else State.RECONNECTING
        return View(
            state=state,
            orders=tuple(sorted(self.follows.orders)),
            last_title=self.recent[-1][0] if self.recent else None,
            last_at=self.last_at,
            connected=self.connected,
        )

    def publish(self) -> None:
        """Give every tray the current :attr:`view`, if it changed (a failing tray is
        logged, never a reason to stop notifying)."""
        view = self.view
        if view == self._published:
            return
        self._published = view
        for tray in self.trays:
            try:
                tray.update(view)
            except Exception:
                log.exception("a tray failed to show the notifier's state")

    def handle_requests(self, *, online: bool = True) -> None:
        """Do what the menu asked since the last turn. Cut off (not ``online``), all but
        unfollowing is done; that waits for the connection, as do the requests after one
        that found the connection gone."""
        requests = self.controls.take()
        for index, request in enumerate(requests):
            if request.kind == "pause":
                self.pause()
            elif request.kind == "resume":
                self.resume()
            elif request.kind == "recent":
                self.show_recent()
            elif request.kind == "unfollow" and request.order_id is not None:
                if not online:
                    self.controls.request(request)
                    continue
                try:
                    self.unfollow(request.order_id)
                except Unavailable:
                    for later in requests[index:]:
                        self.controls.request(later)
                    raise

    def pause(self) -> None:
        """Hold every change for :attr:`pause_s` (or until :meth:`resume`)."""
        self.paused_until = self.clock() + self.pause_s
        log.info("paused for %.0f s", self.pause_s)
        self.publish()

    def resume(self) -> None:
        """End the pause: what came meanwhile is shown as one summary."""
        if self.paused_until is None:
            return
        self.paused_until = None
        now = self.clock()
        held = self.coalescer.take_all(now)
        log.info("resumed; %d change(s) came while paused", len(held))
        if held:
            self._show(held, catch_up=False, paused=True)
        self.publish()

    def show_recent(self) -> None:
        """Show the last notifications again (or say there were none yet)."""
        if not self.recent:
            self.desktop.show(
                desktop_text("nothing_recent", self.language),
                desktop_text("nothing_recent_body", self.language),
            )
        for title, body, order_id in list(self.recent):
            self.desktop.show(title, body, order_id)

    def unfollow(self, order_id: int) -> None:
        """Stop following one order, through the same ``unfollow`` command as the CLI."""
        try:
            self.foundation.unfollow(self.caseworker, order_id)
        except Unavailable:
            raise
        except JobordreError as error:
            log.warning("could not unfollow order %s: %s", order_id, error.message)
        self.refresh_follows()

    # --- helpers ----------------------------------------------------------------------------

    def _resync(self) -> None:
        self.refresh_follows()
        self.sync(self.received or 0, show="live")
        self.connected = True
        log.info("connected again; caught up to event %s", self.received)

    def _until_connected(self, action: Callable[[], None], stop: Callable[[], bool]) -> None:
        wait_s = RECONNECT_FIRST_S
        while not stop():
            try:
                action()
                self.publish()
                return
            except Unavailable as error:
                log.info("not connected (%s); trying again in %.1f s", error.message, wait_s)
                self.connected = False
                self.publish()
                # The menu still works while cut off: pause and resume need no connection.
                self.handle_requests(online=False)
                self.sleep(wait_s)
                wait_s = min(wait_s * 2, self.reconnect_max_s)

    def _check_stream_reset(self) -> None:
        """A Redis that restarted between two reads holds a new, shorter stream: resync."""
        tail_id, _, _ = self.stream.tail()
        if went_back(tail_id, self.stream_id):
            log.info("the event stream was reset; catching up from the inbox")
            self.sync(self.received or 0, show="live")

    def _hold_followed(
        self, events: Iterable[EventHeader], hold: Callable[[EventHeader], None]
    ) -> None:
        """Hold the followed ones of ``events`` (each is looked at, in seq order, so orders
        the organisation places on become followed on the way)."""
        for event in events:
            if self.follows.matches(event):
                hold(event)

    def _inbox_after(
        self, since: int, hold: Callable[[EventHeader], None], *, held_live: bool = False
    ) -> int:
        """Hold the followed events of this organisation after ``since`` (of ``epoch``),
        page by page; returns the seq up to which every event has been seen, and sets
        ``epoch``.

        Nothing but the page being read is kept (``hold`` folds what matched into a
        digest), so a catch-up after a long absence takes bounded memory. The cursor is
        resolved by the foundation: one of another log is never taken at its word (the
        pages then start lower than ``since``).

        ``held_live``: ``hold`` puts them in the live flow, which outlives a read that
        fails: ``received`` and ``epoch`` then move past each page as it is held, so the
        catching up after a failed read starts after it and holds nothing twice. (A
        catch-up summary is shown only once whole: a failed read drops it, and the catching
        up starts from the beginning again.)
        """
        page = self.foundation.inbox(str(Cursor(since, self.epoch)), INBOX_PAGE)
        # Where the foundation resolved the cursor (below it for another log's cursor).
        received = int(page.get("from_seq", since))
        while True:
            # The inbox lists the organisation's own events and leaves out who else
            # received them: each one reaches this organisation by definition.
            audience = [self.follows.principal]
            batch = [
                EventHeader.model_validate({"audience": audience, **event})
                for event in page.get("events", [])
            ]
            if not batch:
                break
            self._hold_followed(batch, hold)
            received = max(received, batch[-1].seq)
            following = Cursor.parse(str(page.get("cursor", batch[-1].cursor)))
            if held_live:
                self.received, self.epoch = received, following.epoch
            page = self.foundation.inbox(str(following), INBOX_PAGE)
        head = page.get("head")
        if head is not None:
            # The last page listed everything up to the log's end: the foundation as a
            # whole has come this far, though this organisation's last event may be older.
            end = Cursor.parse(head)
            received, self.epoch = max(received, end.seq), end.epoch
        return received

    def _safe_cursor(self) -> Cursor | None:
        """The highest seq that can be stored: never past a change not yet shown."""
        if self.received is None:
            return None
        seq = self.received
        first = self.coalescer.pending.first_seq
        if first is not None:
            seq = min(seq, first - 1)
        return Cursor(seq, self.epoch)

    def _save(self, *, force: bool = False) -> None:
        cursor = self._safe_cursor()
        if cursor is None or cursor == self._saved:
            return
        now = self.clock()
        if not force and now - self._saved_at < SAVE_EVERY_S:
            return
        self.cursor_file.save(cursor)
        self._saved, self._saved_at = cursor, now

    def _show(self, changes: Digest, *, catch_up: bool, paused: bool = False) -> None:
        """Store the cursor past ``changes``, then show them as one notification."""
        self._save(force=True)
        notification = notification_for(changes, self.language, catch_up=catch_up, paused=paused)
        # The one order a notification is about can be opened from it ("Åbn").
        only = changes.most_recent()[0].latest.order_id if changes.order_count == 1 else None
        self.desktop.show(notification.title, notification.body, only)
        self.recent.append((notification.title, notification.body, only))
        self.last_at = datetime.now(UTC).isoformat(timespec="seconds")
        log.info("notified %d change(s) on %d order(s)", len(changes), changes.order_count)
        self.publish()
