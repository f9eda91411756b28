"""Reading the event log: an organisation's inbox (R1–R4, S6) and orders changed (S3).

Reading never moves anything: the caller keeps its cursor (each event's ``cursor``, the
event log's identity and the event's ``seq``; the document's ``cursor`` is the last one
read) and asks again from there. A cursor of another log (a store restored from a backup,
a new store) is never taken at its word: see :func:`shared.eventlog.resolve`.

A page is bounded twice: by ``limit`` events and by :data:`PAGE_MAX_BYTES` of JSON, so
one reply stays small whatever the events carry.
"""

from __future__ import annotations

import json
from typing import Any

from shared import eventlog, orders, placements
from shared.commands import Inbox, OrderChanges
from shared.context import Context
from shared.events import Cursor, EventType
from shared.models import JobOrder
from shared.store.interface import Row, Tx

#: A page ends once its events take this many bytes of JSON (at least one event is sent).
PAGE_MAX_BYTES = 1_000_000


class _Epochs:
    """Which epoch each seq belongs to, for headers written before they carried one."""

    def __init__(self, conn: Tx) -> None:
        self.epochs = eventlog.epochs(conn)

    def of(self, seq: int) -> str:
        found = self.epochs[0][0]
        for epoch, base in self.epochs:
            if base < seq:
                found = epoch
        return found


def _cursor(header: dict[str, Any], epochs: _Epochs) -> str:
    seq = int(header["seq"])
    return str(Cursor(seq, header.get("epoch") or epochs.of(seq)))


def _event(row: Row, ctx: Context, headers_only: bool, epochs: _Epochs) -> dict[str, Any]:
    """One event as ``ctx.who`` receives it: the header, and the order or the change to the
    placement log as they were."""
    header = eventlog.header_of(row)
    del header["audience"]
    header["epoch"] = header.get("epoch") or epochs.of(int(header["seq"]))
    event = {**header, "cursor": _cursor(header, epochs)}
    if headers_only:
        return event
    snapshot = JobOrder.from_stored(row["order_doc"])
    if row["type"] == EventType.PLACEMENT_LOG_UPDATED:
        changed = [int(change["placement_id"]) for change in header.get("placements", [])]
        event["log"] = placements.change_view(ctx, snapshot, changed, row["log_upto"])
        # The whole log is one query away (R4); it is not repeated in every event.
        event["full_log"] = {"command": "placement log", "order_id": snapshot.id}
    else:
        event["order"] = orders.view(snapshot, ctx.who)
    return event


def _page(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first items that fit in :data:`PAGE_MAX_BYTES` (at least one)."""
    size = 0
    for i, item in enumerate(items):
        size += len(json.dumps(item, ensure_ascii=False).encode())
        if size > PAGE_MAX_BYTES and i > 0:
            return items[:i]
    return items


def inbox(ctx: Context, command: Inbox) -> dict[str, Any]:
    """The events addressed to the caller after ``since``, oldest first.

    ``from_seq`` is the seq the cursor was resolved to (lower than its own seq for a cursor
    of an earlier epoch; 0 for one of another log); ``head`` is the cursor after the
    newest event of the whole log, where a reader that starts from now begins.
    """
    given = Cursor.parse(command.since)
    since = eventlog.resolve(ctx.conn, given)
    epochs = _Epochs(ctx.conn)
    rows = eventlog.read(ctx.conn, ctx.who, since, command.limit, inbox=True)
    events = _page([_event(row, ctx, command.headers_only, epochs) for row in rows])
    head = eventlog.head(ctx.conn)
    return {
        "events": events,
        "cursor": events[-1]["cursor"] if events else str(Cursor(since, head.epoch)),
        "from_seq": since,
        "head": str(head),
    }


def changes(ctx: Context, command: OrderChanges) -> dict[str, Any]:
    """Every change the caller may see after ``since`` (S3 "also updated orders"), each
    with the order as it was right after the change."""
    since = eventlog.resolve(ctx.conn, Cursor.parse(command.since))
    epochs = _Epochs(ctx.conn)
    rows = eventlog.read(ctx.conn, ctx.who, since, command.limit, inbox=False)
    listed = []
    for row in rows:
        header = eventlog.header_of(row)
        listed.append(
            {
                "cursor": _cursor(header, epochs),
                "type": header["type"],
                "at": header["at"],
                "order_id": header["order_id"],
                "version": header["version"],
                "status": header["status"],
                "by": header["by"],
                "order": orders.view(JobOrder.from_stored(row["order_doc"]), ctx.who),
            }
        )
    listed = _page(listed)
    return {
        "changes": listed,
        "cursor": listed[-1]["cursor"] if listed else str(Cursor(since, epochs.epochs[-1][0])),
    }
