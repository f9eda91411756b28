"""Turning a burst of changes into one notification.

A change is held until no further change came for ``quiet_s`` (so one change shows almost
at once, and a burst that arrives together shows as one summary), but never longer than
``burst_s`` after the first held change (a steady trickle still shows). After a
notification, the next one waits until ``burst_s`` has passed: at most one popup per
``burst_s``, however busy the foundation is. Time is passed in, so this is pure logic.
Held changes are folded into a :class:`~notifier.digest.Digest` as they come, so a flood
of them (a reconnect after a long outage) takes bounded memory.
"""

from __future__ import annotations

from notifier.digest import Digest
from shared.events import EventHeader


class Coalescer:
    """Holds matched changes and says when to show them as one notification."""

    def __init__(self, quiet_s: float, burst_s: float) -> None:
        self.quiet_s = quiet_s
        self.burst_s = burst_s
        #: The changes held, folded into what their notification will say.
        self.pending = Digest()
        self._first_at = 0.0
        self._last_at = 0.0
        self._shown_at: float | None = None

    def add(self, event: EventHeader, now: float) -> None:
        """Hold one change that arrived at ``now``."""
        if not self.pending:
            self._first_at = now
        self._last_at = now
        self.pending.add(event)

    def due_at(self) -> float | None:
        """When the held changes are to be shown; ``None`` when nothing is held."""
        if not self.pending:
            return None
        due = min(self._last_at + self.quiet_s, self._first_at + self.burst_s)
        if self._shown_at is not None:
            due = max(due, self._shown_at + self.burst_s)
        return due

    def shown(self, now: float) -> None:
        """A notification was shown at ``now`` by other means (the catch-up summary)."""
        self._shown_at = now

    def take_all(self, now: float) -> Digest:
        """Every held change, due or not (then forgotten): the summary after a pause."""
        batch, self.pending = self.pending, Digest()
        if batch:
            self._shown_at = now
        return batch

    def take(self, now: float) -> Digest:
        """The held changes if they are due at ``now`` (then forgotten), else an empty
        digest."""
        due = self.due_at()
        if due is None or now < due:
            return Digest()
        batch, self.pending = self.pending, Digest()
        self._shown_at = now
        return batch
