"""Fakes for the notifier's parts: a foundation, a stream, a desktop and a clock.

They keep the same contracts as the real ones (inbox pages by seq and filters by audience;
the stream has ids and tail; failures are ``Unavailable``), so the service logic is tested
without sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from notifier.backend import DeliveryFailed
from notifier.source import STREAM_START
from notifier.tray import View
from shared.errors import JobordreError, Unavailable
from shared.events import AUTHORITIES, Cursor, EventHeader, EventType, PlacementChange
from shared.models import OrderStatus, PlacementStatus

ME = "jobcentre:751"
CVR = "10150817"


def event(
    seq: int,
    order_id: int = 42,
    *,
    type: EventType = EventType.ORDER_STATUS_CHANGED,
    status: OrderStatus = OrderStatus.INACTIVATED,
    title: str = "Lagermedarbejder",
    cvr: str = CVR,
    audience: tuple[str, ...] = (AUTHORITIES,),
    placements: tuple[PlacementChange, ...] = (),
    by: str = "system",
    previous_status: OrderStatus | Literal["other"] | None = "other",
) -> EventHeader:
    """One event header with sensible defaults: by default the system inactivated order 42
    because its referrals reached the maximum (R3b). A status change comes from another
    status unless ``previous_status`` says otherwise (``None``: a header from before the
    field existed)."""
    if previous_status == "other":
        previous_status = next(s for s in OrderStatus if s != status)
    return EventHeader(
        id=f"e{seq}",
        seq=seq,
        type=type,
        at="2026-11-26T12:00:00+00:00",
        order_id=order_id,
        title=title,
        status=status,
        version=seq,
        processing_by=[],
        employer_cvr=cvr,
        by=by,
        audience=list(audience),
        placements=list(placements),
        previous_status=previous_status if type == EventType.ORDER_STATUS_CHANGED else None,
    )


def placed(
    seq: int,
    order_id: int = 42,
    *,
    by: str = ME,
    count: int = 1,
    from_status: PlacementStatus | None = None,
    to_status: PlacementStatus = PlacementStatus.PLACED,
    audience: tuple[str, ...] | None = None,
) -> EventHeader:
    """A placement log update: ``count`` placements registered (or changed) by ``by``."""
    changes = tuple(
        PlacementChange(
            placement_id=seq * 100 + i,
            placed_by=by,
            by=by,
            from_status=from_status,
            to_status=to_status,
        )
        for i in range(count)
    )
    return event(
        seq,
        order_id,
        type=EventType.PLACEMENT_LOG_UPDATED,
        status=OrderStatus.PROCESSING,
        audience=audience or (by,),
        placements=changes,
    )


@dataclass
class FakeQueries:
    """The workers' ``following`` and ``inbox`` queries over an in-memory event log.

    The log has epochs like the real one (``shared/eventlog.py``): :meth:`restore` goes
    back to a backup and starts a new epoch, :meth:`new_store` starts a log of its own.
    """

    principal: str = ME
    events: list[EventHeader] = field(default_factory=list)
    #: (epoch, base seq) of every epoch of this log, oldest first.
    epochs: list[tuple[str, int]] = field(default_factory=lambda: [("e1", 0)])
    follows: dict[str, Any] = field(
        default_factory=lambda: {
            "orders": [42],
            "employers": [],
            "placements_of_my_organisation": False,
            "placed_orders": [],
        }
    )
    down: bool = False
    #: What the next inbox calls do, one each: raise the error (a read the workers refuse,
    #: or one that is lost), or answer (``None``).
    refusals: list[JobordreError | None] = field(default_factory=list)
    inbox_calls: list[int] = field(default_factory=list)
    #: How many events the inbox listed, in all.
    listed: int = 0
    #: (caseworker, order id) of every unfollow command.
    unfollowed: list[tuple[str, int]] = field(default_factory=list)

    @property
    def epoch(self) -> str:
        return self.epochs[-1][0]

    @property
    def last_seq(self) -> int:
        return max((e.seq for e in self.events), default=self.epochs[-1][1])

    def commit(self, *events: EventHeader) -> list[EventHeader]:
        """Append events, stamped with the log's current epoch; returns them stamped."""
        stamped = [e.model_copy(update={"epoch": self.epoch}) for e in events]
        self.events.extend(stamped)
        return stamped

    def restore(self, upto: int) -> None:
        """The store is restored from a backup that ends at event ``upto``; its relay
        then starts a new epoch."""
        self.events = [e for e in self.events if e.seq <= upto]
        self.epochs.append((f"e{len(self.epochs) + 1}", upto))

    def new_store(self) -> None:
        """A new, empty store on the same Redis: a log of its own."""
        self.events = []
        self.epochs = [("ab", 0)]

    def resolve(self, since: str) -> int:
        cursor = Cursor.parse(since)
        if cursor.epoch is None:
            return min(cursor.seq, self.last_seq)
        ends = [base for _, base in self.epochs[1:]] + [self.last_seq]
        for (epoch, _), end in zip(self.epochs, ends, strict=True):
            if epoch == cursor.epoch:
                return min(cursor.seq, end)
        return 0

    def unfollow(self, caseworker: str, order_id: int) -> None:
        if self.down:
            raise Unavailable("the foundation is down (fake)")
        self.unfollowed.append((caseworker, order_id))
        self.follows["orders"] = [o for o in self.follows["orders"] if o != order_id]

    def following(self, caseworker: str) -> dict[str, Any]:
        if self.down:
            raise Unavailable("the foundation is down (fake)")
        return {"caseworker": caseworker, **self.follows}

    def inbox(self, since: str, limit: int) -> dict[str, Any]:
        if self.down:
            raise Unavailable("the foundation is down (fake)")
        refusal = self.refusals.pop(0) if self.refusals else None
        if refusal is not None:
            raise refusal
        self.inbox_calls.append(Cursor.parse(since).seq)
        after = self.resolve(since)
        mine = [e for e in self.events if e.seq > after and e.reaches(self.principal)][:limit]
        self.listed += len(mine)
        # Like the real inbox: the header without its audience, plus the order.
        return {
            "events": [
                {
                    **e.model_dump(mode="json", exclude={"audience"}),
                    "cursor": str(e.cursor),
                    "order": {"id": e.order_id},
                }
                for e in mine
            ],
            "cursor": str(mine[-1].cursor if mine else Cursor(after, self.epoch)),
            "from_seq": after,
            "head": str(Cursor(self.last_seq, self.epoch)),
        }


def _key(stream_id: str) -> tuple[int, int]:
    millis, _, sequence = stream_id.partition("-")
    return int(millis), int(sequence)


@dataclass
class FakeStream:
    """The Redis stream: ids ``<n>-0``, lost on :meth:`reset` (a Redis restart)."""

    entries: list[tuple[str, EventHeader]] = field(default_factory=list)
    down: bool = False
    epoch: int = 0
    reads: int = 0

    def push(self, *events: EventHeader) -> None:
        for header in events:
            number = len(self.entries) + 1
            self.entries.append((f"{self.epoch * 1000 + number}-0", header))

    def reset(self) -> None:
        """Everything lost; new ids start lower than the old ones (a fresh Redis)."""
        self.entries = []
        self.epoch = 0

    def tail(self) -> tuple[str, int | None, str | None]:
        if self.down:
            raise Unavailable("redis is down (fake)")
        if not self.entries:
            return STREAM_START, None, None
        epoch = self.entries[-1][1].epoch
        newest = [header.seq for _, header in self.entries[-100:] if header.epoch == epoch]
        return self.entries[-1][0], max(newest), epoch or None

    def read(self, after: str, block_ms: int) -> list[tuple[str, EventHeader | None]]:
        if self.down:
            raise Unavailable("redis is down (fake)")
        self.reads += 1
        return [
            (entry_id, header) for entry_id, header in self.entries if _key(entry_id) > _key(after)
        ]


@dataclass
class FakeDesktop:
    """Records what was shown; fails with :class:`DeliveryFailed` while ``broken``."""

    shown: list[tuple[str, str]] = field(default_factory=list)
    broken: bool = False
    #: The order each shown notification was about (None: several).
    order_ids: list[int | None] = field(default_factory=list)

    def show(self, title: str, body: str, order_id: int | None = None) -> None:
        if self.broken:
            raise DeliveryFailed("no notification service (fake)")
        self.shown.append((title, body))
        self.order_ids.append(order_id)


@dataclass
class FakeClock:
    """Time that moves only when told to; ``sleep`` moves it."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeTray:
    """Records every view the notifier published."""

    views: list[View] = field(default_factory=list)
    stopped: bool = False

    def update(self, view: View) -> None:
        self.views.append(view)

    def stop(self) -> None:
        self.stopped = True

    @property
    def states(self) -> list[str]:
        """The states shown, each change once."""
        states: list[str] = []
        for view in self.views:
            if not states or states[-1] != view.state.value:
                states.append(view.state.value)
        return states
