"""What a notification says about many changes, kept in bounded memory.

A catch-up after a long absence, or a reconnect after a long outage, may bring thousands
of followed changes. A notification only needs how many there were, on how many orders,
and for the most recently changed orders what happened to each: whether it was
registered, its latest status, and how many placements which organisation registered or
changed. :class:`Digest` folds changes into exactly that as they are read, so memory grows
with the orders changed (an id each) and :data:`KEPT_ORDERS` small summaries, never with
the changes.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.events import EventHeader, EventType

#: Orders whose changes are kept in detail (most recently changed first); a notification
#: lists far fewer, so an order pushed out and back gets counted from its return only in
#: a burst of more orders than this.
KEPT_ORDERS = 1000


@dataclass
class OrderChanges:
    """What happened to one order in a batch of changes."""

    #: The order's latest change: its id and title for the heading.
    latest: EventHeader
    registered: bool = False
    #: The latest change of its status (take and release are none).
    status: EventHeader | None = None
    #: Placements registered / changed, per organisation that acted, in order of appearance.
    new: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)

    def add(self, event: EventHeader) -> None:
        """Fold in one more (later) change of this order."""
        self.latest = event
        if event.type == EventType.ORDER_REGISTERED:
            self.registered = True
        if event.status_changed:
            self.status = event
        for change in event.placements:
            (self.new if change.from_status is None else self.changed)[change.by] += 1


class Digest:
    """Changes folded into what a notification says about them."""

    def __init__(self, events: Iterable[EventHeader] = ()) -> None:
        #: How many changes were folded in.
        self.changes = 0
        #: The lowest seq among them (``None`` while empty).
        self.first_seq: int | None = None
        self._order_ids: set[int] = set()
        #: The most recently changed orders, the most recent last.
        self._orders: OrderedDict[int, OrderChanges] = OrderedDict()
        for event in events:
            self.add(event)

    def add(self, event: EventHeader) -> None:
        """Fold in one change (changes arrive in seq order)."""
        self.changes += 1
        self.first_seq = event.seq if self.first_seq is None else min(self.first_seq, event.seq)
        self._order_ids.add(event.order_id)
        order = self._orders.pop(event.order_id, None) or OrderChanges(event)
        order.add(event)
        self._orders[event.order_id] = order
        if len(self._orders) > KEPT_ORDERS:
            self._orders.popitem(last=False)

    def __len__(self) -> int:
        return self.changes

    @property
    def order_count(self) -> int:
        """On how many orders the changes were."""
        return len(self._order_ids)

    def most_recent(self) -> list[OrderChanges]:
        """The orders kept in detail, the most recently changed first."""
        return list(reversed(self._orders.values()))
