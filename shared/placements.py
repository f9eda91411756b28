"""Operations on placements and the placement log (formidlingslog): S4, S5, R4."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from shared import access, eventlog, orders, rules, store
from shared.commands import ChangePlacementStatus, PlacementLog, RegisterPlacement
from shared.context import Context
from shared.errors import InvalidInput, NotFound
from shared.events import EventType, PlacementChange
from shared.models import JobOrder, LogEntry, OrderStatus, PlacementStatus, Principal
from shared.store.interface import Result, Row, Tx

#: Reads a stored time and writes it as :class:`Placement` does in its JSON.
_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _json_time(text: str) -> Any:
    return _TIME.dump_python(_TIME.validate_python(text), mode="json")


def _placement_view(
    row: Row | Mapping[str, Any],
    who: Principal,
    status: str | None = None,
    updated_at: str | None = None,
) -> dict[str, Any]:
    """``Placement(...).model_dump(mode="json")`` of a stored row, for ``who``.

    Built as the dict the model dumps, field for field and in its order: the row was
    checked when it was written, and a model built only to be dumped again cost a write
    more than the dict. Its times go through pydantic, so they read as the model's.
    """
    full = rules.sees_person(who, row["placed_by"])
    created = str(row["created_at"])
    updated = updated_at or str(row["updated_at"])
    created_json = _json_time(created)
    return {
        "id": row["id"],
        "order_id": row["order_id"],
        "cpr": row["cpr"] if full else None,
        "masked": not full,
        "placed_by": row["placed_by"],
        "caseworker": row["caseworker"],
        "referral": bool(row["referral"]),
        "status": PlacementStatus(status or row["status"]).value,
        "note": row["note"] if full else None,
        "created_at": created_json,
        # A new placement was created and updated at once: its time is converted once.
        "updated_at": created_json if updated == created else _json_time(updated),
    }


def _entry_view(row: Row, placed_by: str, who: Principal) -> dict[str, Any]:
    return LogEntry(
        id=row["id"],
        order_id=row["order_id"],
        placement_id=row["placement_id"],
        at=row["at"],
        organisation=row["organisation"],
        caseworker=row["caseworker"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        note=row["note"] if rules.sees_person(who, placed_by) else None,
    ).model_dump(mode="json")


def _log(
    ctx: Context,
    placement_id: int,
    order_id: int,
    from_status: str | None,
    to_status: str,
    note: str | None,
    *,
    entry: int | None = None,
) -> Result:
    """Append a placement-log entry about ``placement_id``, with the id ``entry`` if the
    caller read it ahead (:attr:`Tx.next_placement_ids_sql`); the statement, whose one row
    is the entry's id (the order's newest entry, for the event)."""
    columns = "order_id, placement_id, at, organisation, caseworker, from_status, to_status, note"
    values: tuple[Any, ...] = (
        order_id,
        placement_id,
        ctx.stamp,
        str(ctx.who),
        ctx.caseworker,
        from_status,
        to_status,
        note,
    )
    if entry is not None:
        columns, values = f"id, {columns}", (entry, *values)
    marks = ", ".join("?" for _ in values)
    return ctx.conn.execute(
        f"INSERT INTO placement_log ({columns}) VALUES ({marks}) RETURNING id",  # noqa: S608
        values,
    )


def _load(conn: Tx, order_id: int, placement_id: int) -> Row:
    row: Row | None = conn.execute(
        "SELECT * FROM placements WHERE id = ? AND order_id = ?", (placement_id, order_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"placement {placement_id} on job order {order_id}: not found")
    return row


def register(ctx: Context, command: RegisterPlacement) -> dict[str, Any]:
    """Put a person forward on an order being processed (S4); one placement per person."""
    # The order's placements, read once: whether the person is on it already, who placed
    # on it (the event's audience) and its active referrals, with the placement made here.
    # Sent with the order's statement: read after it, once the order is locked.
    query = store.query_order(ctx.conn, command.order_id)
    placed_query = ctx.conn.execute(
        "SELECT id, placed_by, cpr, referral, status FROM placements WHERE order_id = ?",
        (command.order_id,),
    )
    # The ids the placement and its log entry get, read with the order (one wait for all
    # three): the statements that write them need no answer, so the command waits once.
    # Read at once, so no statement is left half-read should the order fail to load.
    next_ids = ctx.conn.execute(ctx.conn.next_placement_ids_sql).fetchone()
    order, order_doc = store.stored_order(query, command.order_id)
    rules.check_place(ctx.who, order)
    placed = placed_query.fetchall()
    existing = next((row for row in placed if row["cpr"] == command.cpr), None)
    if existing is not None:
        if rules.sees_person(ctx.who, existing["placed_by"]):
            error = InvalidInput(
                f"cpr: the person is already placed on job order {order.id} "
                f"(placement {existing['id']}); change that placement's status instead",
                field="cpr",
            )
        else:
            # One placement per person per order makes the refusal itself tell that the
            # person is on the order; it tells no more (not who placed, not which placement),
            # and the probe is in the person's access log.
            error = InvalidInput(
                f"cpr: this person cannot be placed on job order {order.id}: a person is "
                "placed once per order",
                field="cpr",
            )
        error.accesses.append(access.Access(command.cpr, access.PROBE, order.id, None))
        raise error
    placement_id, entry = int(next_ids[0]), int(next_ids[1])
    # The row as stored, for the reply and the referral count: all of it is known here.
    row: dict[str, Any] = {
        "id": placement_id,
        "order_id": order.id,
        "cpr": command.cpr,
        "placed_by": str(ctx.who),
        "caseworker": ctx.caseworker,
        "referral": int(command.referral),
        "status": PlacementStatus.PLACED.value,
        "note": command.note,
        "created_at": ctx.stamp,
        "updated_at": ctx.stamp,
    }
    marks = ", ".join("?" for _ in row)
    ctx.conn.execute(
        f"INSERT INTO placements ({', '.join(row)}) VALUES ({marks})",  # noqa: S608
        tuple(row.values()),
    )
    _log(ctx, placement_id, order.id, None, PlacementStatus.PLACED.value, command.note, entry=entry)
    change = PlacementChange(
        placement_id=placement_id,
        placed_by=str(ctx.who),
        by=str(ctx.who),
        from_status=None,
        to_status=PlacementStatus.PLACED,
    )
    _record_log_event(
        ctx,
        order,
        order_doc,
        change,
        entry,
        placed_by={str(row["placed_by"]) for row in placed} | {str(ctx.who)},
    )
    ctx.accessed(command.cpr, access.REGISTER, order.id, placement_id)
    _inactivate_when_enough(ctx, order, [*placed, row])
    return _placement_view(row, ctx.who)


def _record_log_event(
    ctx: Context,
    order: JobOrder,
    order_doc: str,
    change: PlacementChange,
    entry: int,
    *,
    placed_by: set[str] | None = None,
) -> None:
    """The ``placement_log_updated`` event of one placement's change, up to log ``entry``.

    The order itself did not change: its event carries the document as read. ``placed_by``
    is who placed on the order, when the caller read it already (see :func:`eventlog.record`).
    """
    eventlog.record(
        ctx,
        order,
        EventType.PLACEMENT_LOG_UPDATED,
        placements=[change],
        order_doc=order_doc,
        log_upto=entry,
        placed_by=placed_by,
    )


#: The statuses of :data:`rules.ACTIVE_PLACEMENT_STATUSES` as stored.
_ACTIVE = frozenset(status.value for status in rules.ACTIVE_PLACEMENT_STATUSES)


def _inactivate_when_enough(
    ctx: Context, order: JobOrder, placements: Sequence[Row | Mapping[str, Any]]
) -> None:
    """R3b: with ``max_referrals`` set, the order inactivates itself once active referrals
    reach it; the system does it, in the same transaction as the referral.

    ``placements`` are the order's placements as stored now (read in this transaction).
    """
    if order.max_referrals is None or order.status != OrderStatus.PROCESSING:
        return
    active = sum(1 for row in placements if row["referral"] == 1 and row["status"] in _ACTIVE)
    if active >= order.max_referrals:
        system = replace(ctx, who=Principal("system", ""))
        orders.set_status(system, order, OrderStatus.INACTIVATED)


def change_status(ctx: Context, command: ChangePlacementStatus) -> dict[str, Any]:
    """Change a person's status on an order (S5); allowed after the order closed too."""
    order, order_doc = store.load_stored(ctx.conn, command.order_id)
    rules.require_visible(ctx.who, order)
    row = _load(ctx.conn, order.id, command.placement_id)
    current = PlacementStatus(row["status"])
    rules.check_placement_transition(ctx.who, order, row["placed_by"], current, command.status)
    # The row as stored, for the reply: RETURNING saves reading it back (as in register).
    changed = ctx.conn.execute(
        "UPDATE placements SET status = ?, updated_at = ? WHERE id = ? RETURNING *",
        (command.status.value, ctx.stamp, row["id"]),
    ).fetchone()
    entry = int(
        _log(
            ctx, row["id"], order.id, current.value, command.status.value, command.note
        ).fetchone()[0]
    )
    change = PlacementChange(
        placement_id=row["id"],
        placed_by=row["placed_by"],
        by=str(ctx.who),
        from_status=current,
        to_status=command.status,
    )
    _record_log_event(ctx, order, order_doc, change, entry)
    ctx.accessed(row["cpr"], access.CHANGE, order.id, row["id"])
    return _placement_view(changed, ctx.who)


def log_view(ctx: Context, order: JobOrder, upto: int | None = None) -> dict[str, Any]:
    """The placement log of ``order`` for ``who``, as it stood after entry ``upto``.

    The log is append-only, so any earlier state is exact: a placement's status then is the
    last entry about it up to ``upto``. Every CPR shown goes to the access log.
    """
    conn, who = ctx.conn, ctx.who
    entries = conn.execute(
        "SELECT * FROM placement_log WHERE order_id = ? AND id <= ? ORDER BY id",
        (order.id, upto if upto is not None else 2**62),
    ).fetchall()
    as_of = {row["placement_id"]: row for row in entries}
    placements = [
        row
        for row in conn.execute(
            "SELECT * FROM placements WHERE order_id = ? ORDER BY id", (order.id,)
        ).fetchall()
        if row["id"] in as_of
    ]
    placed_by = {row["id"]: row["placed_by"] for row in placements}
    for row in placements:
        if rules.sees_person(who, row["placed_by"]):
            ctx.accessed(row["cpr"], access.READ, order.id, row["id"])
    return {
        "order_id": order.id,
        "status": order.status.value,
        "placements": [
            _placement_view(row, who, as_of[row["id"]]["to_status"], as_of[row["id"]]["at"])
            for row in placements
        ],
        "entries": [_entry_view(row, placed_by[row["placement_id"]], who) for row in entries],
    }


def change_view(
    ctx: Context, order: JobOrder, placement_ids: list[int], upto: int | None
) -> dict[str, Any]:
    """The part of the placement log one change made, in :func:`log_view`'s shape: the
    changed placements as they stood after entry ``upto`` and each one's entry of the
    change (its last entry up to ``upto``). A CPR shown goes to the access log.

    What an event carries: its size does not grow with the log, where the whole log as it
    stood made a reader's inbox grow with the square of the placements.
    """
    conn, who = ctx.conn, ctx.who
    limit = upto if upto is not None else 2**62
    placements: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for placement_id in sorted(set(placement_ids)):
        row = conn.execute(
            "SELECT * FROM placements WHERE id = ? AND order_id = ?", (placement_id, order.id)
        ).fetchone()
        entry = conn.execute(
            "SELECT * FROM placement_log WHERE placement_id = ? AND id <= ?"
            " ORDER BY id DESC LIMIT 1",
            (placement_id, limit),
        ).fetchone()
        if row is None or entry is None:
            continue
        if rules.sees_person(who, row["placed_by"]):
            ctx.accessed(row["cpr"], access.READ, order.id, row["id"])
        placements.append(_placement_view(row, who, entry["to_status"], entry["at"]))
        entries.append(_entry_view(entry, row["placed_by"], who))
    entries.sort(key=lambda entry: int(entry["id"]))
    return {
        "order_id": order.id,
        "status": order.status.value,
        "placements": placements,
        "entries": entries,
    }


def log(ctx: Context, command: PlacementLog) -> dict[str, Any]:
    """The placement log of an order (R4): every placement and every entry, masked per caller."""
    order = store.load_order(ctx.conn, command.order_id)
    rules.require_visible(ctx.who, order)
    return log_view(ctx, order)
