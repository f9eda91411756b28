"""The notifier's loop: catch up, then show each followed change as it happens.

Two sources, one cursor. The Redis stream carries every event's header the moment the relay
pushes it: fast, but at-least-once and lost if Redis restarts. The inbox query is slow
(a worker round trip) but complete. The notifier keeps ``received``, the seq up to which
it has seen every event: a header at or below it is a duplicate and dropped; a header
beyond ``received + 1`` reveals a gap (a lost or reordered push), which the inbox fills.

What the screen has shown is never shown again: the stored cursor is written *before* a
notification is handed to the desktop, and never past a change still waiting to be shown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from notifier.backend import Desktop
from notifier.coalesce import Coalescer
from notifier.cursor import CursorFile
from notifier.follow import Follows
from notifier.source import INBOX_PAGE, STREAM_START, EventStream, Foundation, stream_id_key
from notifier.texts import Language, notification_for
from shared.errors import Unavailable
from shared.events import EventHeader

log = logging.getLogger(__name__)

#: Longest a read of the stream blocks, so a stop request is noticed within this.
IDLE_BLOCK_S = 1.0
#: The cursor file is rewritten at most this often while only unfollowed changes arrive.
SAVE_EVERY_S = 1.0
#: First wait before reconnecting; it doubles up to the ``reconnect_max_s`` setting.
RECONNECT_FIRST_S = 0.1


class Notifier:
    """One caseworker's notifier: wire it with real or fake parts and call :meth:`run`."""

    def __init__(
        self,
        *,
        foundation: Foundation,
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
        #: Stream id to read after.
        self.stream_id = STREAM_START
        self._saved: int | None = None
        self._saved_at = 0.0
        self._follows_at = 0.0

    # --- the parts of a run ---------------------------------------------------------------

    def start(self) -> None:
        """Load the cursor, read the follows and show one catch-up summary of what changed
        while the notifier was off. On the very first run it starts from now instead."""
        stored = self.cursor_file.load()
        self._saved = stored
        self.refresh_follows()
        if stored is None:
            log.info("first run: notifying changes from now on")
            self.sync(0, show="nothing")
        else:
            self.sync(stored, show="catch_up")
        log.info("caught up to event %s; watching for changes", self.received)

    def refresh_follows(self) -> None:
        """Re-read what the caseworker follows (follows change from other terminals)."""
        result = self.foundation.following(self.caseworker)
        placed = self.follows.placed_orders
        self.follows = Follows.from_result(self.follows.principal, result)
        # Orders placed on since the query's snapshot stay followed.
        self.follows.placed_orders |= placed
        self._follows_at = self.clock()
        if self.follows.empty:
            log.warning(
                "this caseworker follows nothing yet: `jobordre follow ORDER_ID "
                "--caseworker ID --as %s` (or --employer CVR, or --placements)",
                self.follows.principal,
            )

    def sync(self, since: int, *, show: Literal["catch_up", "live", "nothing"]) -> None:
        """Read every event after ``since`` from the inbox, then go on from the stream's
        current end. What matched is shown as one catch-up summary now (``catch_up``),
        joins the live flow (``live``, after a reconnect) or is skipped (first run)."""
        stream_id, stream_seq = self.stream.tail()
        if stream_seq is not None and stream_seq < since:
            # The foundation's log ends before this notifier's cursor: it was set up anew
            # (a fresh store). Waiting for its seq to pass the old cursor would hide
            # everything until then, so go on from its end.
            log.warning("the event log is behind the stored cursor (a new store?); resetting")
            since = stream_seq
        events: list[EventHeader]
        if show == "nothing" and stream_seq is not None:
            events, cursor = [], stream_seq  # first run: only the end of the log matters
        else:
            events, cursor = self._events_after(since, stream_id, stream_seq)
        self.stream_id = stream_id
        # The inbox lists only this organisation's events; the stream's newest header says
        # how far the foundation as a whole has come, and everything up to it was committed
        # before the inbox was asked.
        self.received = max(cursor, stream_seq or 0, since)
        matched = [event for event in events if self.follows.matches(event)]
        if show == "live":
            now = self.clock()
            for event in matched:
                self.coalescer.add(event, now)
            return
        self._save(force=True)
        if show == "catch_up" and matched:
            self._show(matched, catch_up=True)
            self.coalescer.shown(self.clock())

    def step(self) -> None:
        """One turn of the live loop: show what is due, then wait for the stream."""
        now = self.clock()
        batch = self.coalescer.take(now)
        if batch:
            self._show(batch, catch_up=False)
        if now - self._follows_at >= self.follows_refresh_s:
            self.refresh_follows()
            self._check_stream_reset()
        self._save()
        due = self.coalescer.due_at()
        block_s = IDLE_BLOCK_S if due is None else min(IDLE_BLOCK_S, max(due - now, 0.001))
        for stream_id, header in self.stream.read(self.stream_id, int(block_s * 1000)):
            self.stream_id = stream_id
            if header is not None:
                self.receive(header)

    def receive(self, header: EventHeader) -> None:
        """Take one header from the stream: drop duplicates, fill gaps, hold matches."""
        received = self.received or 0
        if header.seq <= received:
            return  # at-least-once delivery: seen already
        if header.seq > received + 1:
            # Lost or reordered pushes: the inbox has every committed event of this
            # organisation up to here (and perhaps beyond; later headers are then dropped).
            events, cursor = self._inbox_after(received)
            self.received = max(cursor, header.seq)
            for event in events:
                self._hold_if_followed(event)
            return
        self.received = header.seq
        self._hold_if_followed(header)

    def run(self, stop: Callable[[], bool]) -> None:
        """Catch up (unless :meth:`start` ran already), then loop until ``stop()``.

        Reconnects by itself whenever Redis or the workers are gone, without showing
        anything twice or losing a change."""
        if self.received is None:
            self._until_connected(self.start, stop)
        while not stop():
            try:
                self.step()
            except Unavailable as error:
                log.warning("lost the connection: %s; reconnecting", error.message)
                self._until_connected(self._resync, stop)
        self._save(force=True)

    # --- helpers ----------------------------------------------------------------------------

    def _resync(self) -> None:
        self.refresh_follows()
        self.sync(self.received or 0, show="live")
        log.info("connected again; caught up to event %s", self.received)

    def _until_connected(self, action: Callable[[], None], stop: Callable[[], bool]) -> None:
        wait_s = RECONNECT_FIRST_S
        while not stop():
            try:
                action()
                return
            except Unavailable as error:
                log.info("not connected (%s); trying again in %.1f s", error.message, wait_s)
                self.sleep(wait_s)
                wait_s = min(wait_s * 2, self.reconnect_max_s)

    def _check_stream_reset(self) -> None:
        """A Redis that restarted between two reads holds a new, shorter stream: resync."""
        tail_id, _ = self.stream.tail()
        if stream_id_key(tail_id) < stream_id_key(self.stream_id):
            log.info("the event stream was reset; catching up from the inbox")
            self.sync(self.received or 0, show="live")

    def _events_after(
        self, since: int, stream_id: str, stream_seq: int | None
    ) -> tuple[list[EventHeader], int]:
        """This organisation's events after ``since`` and the cursor after them: from the
        stream if it still holds every one (no worker round trip, and no placement log with
        CPR numbers read, and so logged as read, only to be thrown away), else the inbox."""
        if stream_seq is not None:
            if stream_seq <= since:
                return [], since
            headers = self.stream.headers_after(since, stream_seq, stream_id)
            if headers is not None:
                mine = [h for h in headers if h.reaches(self.follows.principal)]
                return mine, stream_seq
        return self._inbox_after(since)

    def _inbox_after(self, since: int) -> tuple[list[EventHeader], int]:
        """Every inbox event after ``since``, page by page, and the cursor after them."""
        events: list[EventHeader] = []
        cursor = since
        while True:
            page = self.foundation.inbox(cursor, INBOX_PAGE)
            # The inbox lists the organisation's own events and leaves out who else
            # received them: each one reaches this organisation by definition.
            audience = [self.follows.principal]
            batch = [
                EventHeader.model_validate({"audience": audience, **event})
                for event in page.get("events", [])
            ]
            events.extend(event for event in batch if event.seq > since)
            next_cursor = int(page.get("cursor", cursor))
            if not batch or next_cursor <= cursor:
                return events, cursor
            cursor = next_cursor

    def _hold_if_followed(self, event: EventHeader) -> None:
        if self.follows.matches(event):
            self.coalescer.add(event, self.clock())

    def _safe_cursor(self) -> int | None:
        """The highest seq that can be stored: never past a change not yet shown."""
        if self.received is None:
            return None
        if self.coalescer.pending:
            return min(self.received, min(e.seq for e in self.coalescer.pending) - 1)
        return self.received

    def _save(self, *, force: bool = False) -> None:
        cursor = self._safe_cursor()
        if cursor is None or cursor == self._saved:
            return
        now = self.clock()
        if not force and now - self._saved_at < SAVE_EVERY_S:
            return
        self.cursor_file.save(cursor)
        self._saved, self._saved_at = cursor, now

    def _show(self, events: list[EventHeader], *, catch_up: bool) -> None:
        """Store the cursor past ``events``, then show them as one notification."""
        self._save(force=True)
        notification = notification_for(events, self.language, catch_up=catch_up)
        orders = {event.order_id for event in events}
        # The one order a notification is about can be opened from it ("Åbn").
        self.desktop.show(
            notification.title, notification.body, orders.pop() if len(orders) == 1 else None
        )
        log.info(
            "notified %d change(s) on %d order(s)",
            len(events),
            len({event.order_id for event in events}),
        )
