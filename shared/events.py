"""Events: what organisations receive without asking (§ 137 stk. 1, R1–R4, S6).

Every change is written as an event in the same SQLite transaction as the change itself
(transactional outbox). A relay pushes each event's *header* onto one Redis stream,
:data:`EVENTS_STREAM`; consumers (``jobordre inbox --follow``, the desktop notifier) wake
on it. The header carries no personal data: order id, title, status, who is processing,
and for placement log updates which organisation placed or changed whom — never a CPR
number, a name or a comment. The full event, masked for the reader, is read through the
``inbox`` query. Delivery is at-least-once: a header may arrive twice, always with the same
``id`` and ``seq``; consumers deduplicate by ``seq`` (a reader's cursor).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.models import OrderStatus, PlacementStatus

log = logging.getLogger("jobordre.events")

#: Redis stream of event headers, under the ``redis_prefix`` setting: ``<prefix>:events``.
EVENTS_STREAM = "events"
#: Approximate number of headers the stream keeps; older ones are read from the store.
EVENTS_STREAM_MAXLEN = 100_000


def stream_key(prefix: str) -> str:
    """The Redis key of the event-header stream under a key prefix: ``<prefix>:events``."""
    return f"{prefix}:{EVENTS_STREAM}"


#: Audience marker: every jobcentre and every a-kasse.
AUTHORITIES = "authorities"

#: The wake-up streams, one per audience: ``<prefix>:headers:<principal>`` for an
#: organisation, ``<prefix>:headers:authorities`` for every jobcentre and a-kasse. Each
#: entry is a :class:`Wake` (field ``wake``): the event's id, seq and epoch and nothing of
#: the order, so a Redis reader learns only that something happened; what happened is
#: read through the ``inbox`` query. A Redis ACL gives each organisation read access to
#: its own stream(s) only (``jobordre broker acl``).
HEADERS_STREAMS = "headers"


def audience_stream_key(prefix: str, audience: str) -> str:
    """The wake-up stream of one audience: an organisation's principal or AUTHORITIES."""
    return f"{prefix}:{HEADERS_STREAMS}:{audience}"


def audiences_of(principal: str) -> list[str]:
    """The audiences whose wake-up streams ``principal`` reads: its own, and every
    authority's too for a jobcentre or an a-kasse."""
    if principal.startswith(("jobcentre:", "akasse:")):
        return [principal, AUTHORITIES]
    return [principal]


def audiences_reached(audience: list[str], employer_cvr: str) -> list[str]:
    """The wake-up streams an event with this ``audience`` goes to: each principal named,
    AUTHORITIES if named, and always the order's employer (see :meth:`EventHeader.reaches`)."""
    return sorted({*audience, f"employer:{employer_cvr}"})


@dataclass(frozen=True)
class Wake:
    """One entry of a wake-up stream: an event of this audience was committed."""

    id: str
    seq: int
    epoch: str = ""

    def reaches(self, principal: str) -> bool:
        """Always: it is on a stream of ``principal``'s audiences."""
        return True

    def to_json(self) -> str:
        """The entry's ``wake`` field."""
        return json.dumps({"id": self.id, "seq": self.seq, "epoch": self.epoch})


def parse_wake(fields: dict[Any, Any]) -> Wake | None:
    """The wake-up in one entry of a wake-up stream; ``None`` if it holds none readable."""
    raw = fields.get(b"wake")
    if raw is None:
        return None
    try:
        data: Any = json.loads(raw)
        return Wake(str(data["id"]), int(data["seq"]), str(data.get("epoch") or ""))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


#: A reader's cursor as text: ``<epoch>:<seq>``, the event log's identity and a position
#: in it. A bare ``<seq>``, the format before the log had an identity, is still read.
CURSOR_PATTERN = r"^(?:[0-9a-f]{1,32}:)?[0-9]{1,18}$"
_CURSOR = re.compile(CURSOR_PATTERN)


@dataclass(frozen=True)
class Cursor:
    """A position in one event log: ``seq``, and the log's ``epoch`` (its identity).

    A store restored from a backup, or a new store on the same Redis, numbers its events
    again from a lower seq; the epoch tells a reader that its cursor belongs to another
    log, so it is never taken at its word. ``epoch`` is ``None`` for a cursor in the old
    format (a bare seq), which is trusted as before.
    """

    seq: int
    epoch: str | None = None

    @classmethod
    def parse(cls, value: int | str) -> Cursor:
        """Read a cursor: an int or ``"<seq>"`` (old format) or ``"<epoch>:<seq>"``."""
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a cursor is not negative")
            return cls(value)
        if not _CURSOR.match(value):
            raise ValueError(f"not a cursor: {value!r}")
        epoch, _, seq = value.rpartition(":")
        return cls(int(seq), epoch or None)

    def __str__(self) -> str:
        return f"{self.epoch}:{self.seq}" if self.epoch else str(self.seq)


class EventType(StrEnum):
    """The event types an organisation receives."""

    ORDER_REGISTERED = "order_registered"
    ORDER_UPDATED = "order_updated"
    ORDER_STATUS_CHANGED = "order_status_changed"
    PLACEMENT_LOG_UPDATED = "placement_log_updated"


class PlacementChange(BaseModel):
    """One placement registered or changed, without the person."""

    model_config = ConfigDict(frozen=True)

    placement_id: int
    placed_by: str
    by: str
    from_status: PlacementStatus | None
    to_status: PlacementStatus


class EventHeader(BaseModel):
    """What the relay pushes to Redis for one event: safe to show on a desktop."""

    model_config = ConfigDict(frozen=True)

    #: Unique id of the event; the same on every redelivery.
    id: str
    #: Position in the foundation's event log: a reader's cursor.
    seq: int
    type: EventType
    at: str
    order_id: int
    title: str
    status: OrderStatus
    version: int
    processing_by: list[str]
    employer_cvr: str
    #: Who acted.
    by: str
    #: Who receives it: organisation principals, and/or :data:`AUTHORITIES`.
    audience: list[str]
    #: For placement log updates: the placements registered or changed.
    placements: list[PlacementChange] = []
    #: For ``order_status_changed``: the status before the change. Equal to ``status`` when
    #: only ``processing_by`` changed (take/release, R3a); ``None`` in headers written
    #: before this field existed.
    previous_status: OrderStatus | None = None
    #: The identity of the event log ``seq`` counts in (see :class:`Cursor`); empty in
    #: headers written before the log had one.
    epoch: str = ""

    @property
    def cursor(self) -> Cursor:
        """This event's position: the cursor of a reader who has handled it."""
        return Cursor(self.seq, self.epoch or None)

    @property
    def status_changed(self) -> bool:
        """Whether this event changed the order's status (not only who processes it)."""
        return self.type == EventType.ORDER_STATUS_CHANGED and self.previous_status != self.status

    def reaches(self, principal: str) -> bool:
        """Whether ``principal`` is entitled to this event (SPEC.md, "who may do what")."""
        if principal in self.audience:
            return True
        if principal.startswith("employer:"):
            return principal == f"employer:{self.employer_cvr}"
        return AUTHORITIES in self.audience and principal.startswith(("jobcentre:", "akasse:"))


def change_fields(change: PlacementChange) -> dict[str, Any]:
    """``change.model_dump(mode="json")``, read off the attributes (see :func:`header_json`)."""
    return {
        "placement_id": change.placement_id,
        "placed_by": change.placed_by,
        "by": change.by,
        "from_status": None if change.from_status is None else change.from_status.value,
        "to_status": change.to_status.value,
    }


def header_json(fields: dict[str, Any]) -> str:
    """The JSON :meth:`EventHeader.model_dump_json` gives for ``fields``: every field of
    :class:`EventHeader` in its declared order, as JSON data of the right types (enums as
    their values, placements from :func:`change_fields`), from values checked already.

    The write path encodes one header per command: building the model only to dump it
    again validated what was valid already. pydantic's own encoder writes the text, so it
    is the model's to the byte (``tests/shared/test_eventlog.py`` compares the two).
    """
    return pydantic_core.to_json(fields).decode()


def parse_entry(fields: dict[Any, Any]) -> EventHeader | None:
    """The header in one entry of the event stream; ``None`` if it holds none readable.

    Readers skip such an entry: the inbox query is authoritative, and a reader that
    tracks ``seq`` finds the gap at the next readable header.
    """
    raw = fields.get(b"event")
    if raw is None:
        return None
    try:
        return EventHeader.model_validate_json(raw)
    except ValidationError:
        log.warning("skipped an unreadable event header on the stream")
        return None
