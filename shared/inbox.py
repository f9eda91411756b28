"""Reading the event log: an organisation's inbox (R1–R4, S6) and orders changed (S3).

Reading never moves anything: the caller keeps its cursor (each event's ``seq``; the
document's ``cursor`` is the last one read) and asks again from there.
"""

from __future__ import annotations

from typing import Any

from shared import eventlog, orders, placements
from shared.commands import Inbox, OrderChanges
from shared.context import Context
from shared.events import EventType
from shared.models import JobOrder
from shared.store.interface import Row


def _event(row: Row, ctx: Context, headers_only: bool) -> dict[str, Any]:
    """One event as ``ctx.who`` receives it: the header, and the order or log as they were."""
    header = eventlog.header_of(row)
    del header["audience"]
    event = {**header, "cursor": header["seq"]}
    if headers_only:
        return event
    snapshot = JobOrder.model_validate_json(row["order_doc"])
    if row["type"] == EventType.PLACEMENT_LOG_UPDATED:
        event["log"] = placements.log_view(ctx, snapshot, row["log_upto"])
    else:
        event["order"] = orders.view(snapshot, ctx.who)
    return event


def inbox(ctx: Context, command: Inbox) -> dict[str, Any]:
    """The events addressed to the caller after ``since``, oldest first."""
    rows = eventlog.read(ctx.conn, ctx.who, command.since, command.limit, inbox=True)
    events = [_event(row, ctx, command.headers_only) for row in rows]
    return {"events": events, "cursor": events[-1]["seq"] if events else command.since}


def changes(ctx: Context, command: OrderChanges) -> dict[str, Any]:
    """Every change the caller may see after ``since`` (S3 "also updated orders"), each
    with the order as it was right after the change."""
    rows = eventlog.read(ctx.conn, ctx.who, command.since, command.limit, inbox=False)
    listed = []
    for row in rows:
        header = eventlog.header_of(row)
        listed.append(
            {
                "cursor": header["seq"],
                "type": header["type"],
                "at": header["at"],
                "order_id": header["order_id"],
                "version": header["version"],
                "status": header["status"],
                "by": header["by"],
                "order": orders.view(JobOrder.model_validate_json(row["order_doc"]), ctx.who),
            }
        )
    return {"changes": listed, "cursor": listed[-1]["cursor"] if listed else command.since}
