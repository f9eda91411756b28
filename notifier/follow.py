"""Which changes a caseworker hears about: the follows kept in the foundation.

A caseworker follows single orders, every order of an employer (CVR), and/or every order
where the caseworker's organisation placed someone. Only changes to an order's status and
to its placement log are notified (the issue's promise), plus a new order of a followed
employer: not field edits, and not take/release (an ``order_status_changed`` whose status
stayed the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.events import EventHeader, EventType

#: The event types a follower is told about.
NOTIFIED = frozenset({EventType.ORDER_STATUS_CHANGED, EventType.PLACEMENT_LOG_UPDATED})


@dataclass
class Follows:
    """What one caseworker of ``principal`` follows (the ``following`` query's answer)."""

    principal: str
    orders: set[int] = field(default_factory=set)
    employers: set[str] = field(default_factory=set)
    placements_of_my_organisation: bool = False
    #: Orders the organisation placed on: kept current between refreshes by :meth:`matches`.
    placed_orders: set[int] = field(default_factory=set)

    @classmethod
    def from_result(cls, principal: str, result: dict[str, Any]) -> Follows:
        """Build from the ``following`` query's result."""
        return cls(
            principal=principal,
            orders={int(o) for o in result.get("orders", [])},
            employers={str(c) for c in result.get("employers", [])},
            placements_of_my_organisation=bool(result.get("placements_of_my_organisation")),
            placed_orders={int(o) for o in result.get("placed_orders", [])},
        )

    @property
    def empty(self) -> bool:
        """Whether nothing is followed (the notifier then has nothing to show)."""
        return not (self.orders or self.employers or self.placements_of_my_organisation)

    def matches(self, event: EventHeader) -> bool:
        """Whether ``event`` is one the caseworker is told about.

        Also remembers orders the organisation has just placed on, so their later status
        changes match before the next refresh of the follows.
        """
        if not event.reaches(self.principal):
            return False
        if any(change.placed_by == self.principal for change in event.placements):
            self.placed_orders.add(event.order_id)
        if event.type == EventType.ORDER_REGISTERED:
            return event.employer_cvr in self.employers
        if event.type not in NOTIFIED:
            return False
        if event.type == EventType.ORDER_STATUS_CHANGED and not event.status_changed:
            return False  # take/release: only processing_by changed
        return (
            event.order_id in self.orders
            or event.employer_cvr in self.employers
            or (self.placements_of_my_organisation and event.order_id in self.placed_orders)
        )
