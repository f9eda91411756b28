"""Operations on job orders: register, update, change status, search, fetch (S1–S3)."""

from __future__ import annotations

from datetime import date
from typing import Any

from shared import eventlog, rules, store
from shared import search as search_index
from shared.commands import (
    ChangeOrderStatus,
    ExpireOrders,
    GetOrder,
    RegisterOrder,
    ReleaseOrder,
    SearchOrders,
    TakeOrder,
    UpdateOrder,
)
from shared.context import Context
from shared.errors import Forbidden, InvalidInput, InvalidTransition, VersionConflict
from shared.events import EventType
from shared.models import JobOrder, OrderStatus, Origin, Principal

_ORIGINS = {"employer": Origin.JOBAG, "jobcentre": Origin.JOBCENTRE, "akasse": Origin.AKASSE}


def view(order: JobOrder, who: Principal) -> dict[str, Any]:
    """The order as JSON for ``who``: employers never see the authorities' internal comment."""
    document = order.model_dump(mode="json")
    if who.kind == "employer":
        document["internal_comment"] = None
    return document


def register(ctx: Context, command: RegisterOrder) -> dict[str, Any]:
    """Register a new order (R1/R2 intake): status processing, version 1."""
    draft = command.order
    rules.check_register(ctx.who, draft)
    _check_deadline(ctx, draft.placement_deadline)
    order = JobOrder(
        id=store.next_order_id(ctx.conn),
        **draft.model_dump(),
        origin=_ORIGINS[ctx.who.kind],
        registered_by=str(ctx.who),
        processing_by=[str(ctx.who)] if ctx.who.is_authority else [],
        status=OrderStatus.PROCESSING,
        version=1,
        created_at=ctx.at,
        updated_at=ctx.at,
    )
    doc = store.insert_order(ctx.conn, order)
    eventlog.record(ctx, order, EventType.ORDER_REGISTERED, order_doc=doc)
    return view(order, ctx.who)


def _check_deadline(ctx: Context, deadline: date) -> None:
    if deadline < ctx.at.date():
        raise InvalidInput(
            "placement_deadline: the deadline has passed; give today's date or a later one",
            field="placement_deadline",
        )


def _check_version(order: JobOrder, expected: int | None) -> None:
    if expected is not None and expected != order.version:
        raise VersionConflict(
            f"job order {order.id} is at version {order.version}, not {expected}: fetch it "
            "again, reapply your change and send it with the new version"
        )


def update(ctx: Context, command: UpdateOrder) -> dict[str, Any]:
    """Change an order's fields (S2) if the caller's ``expected_version`` is current."""
    order = store.load_order(ctx.conn, command.order_id)
    patch = command.patch
    rules.check_update(
        ctx.who,
        order,
        patch.job_type,
        patch.employer.cvr if patch.employer else None,
        sets_internal_comment="internal_comment" in patch.model_fields_set,
    )
    _check_version(order, command.expected_version)
    if patch.placement_deadline is not None:
        _check_deadline(ctx, patch.placement_deadline)
    changes = {name: getattr(patch, name) for name in patch.model_fields_set}
    updated = order.model_copy(
        update={**changes, "version": order.version + 1, "updated_at": ctx.at}
    )
    # Re-validate the whole order: a patch may be valid alone and not in combination.
    updated = JobOrder.model_validate(updated.model_dump())
    doc = store.save_order(ctx.conn, updated, previous=order)
    eventlog.record(ctx, updated, EventType.ORDER_UPDATED, order_doc=doc)
    return view(updated, ctx.who)


def set_status(ctx: Context, order: JobOrder, status: OrderStatus) -> JobOrder:
    """Move an order to ``status`` (already checked) and log the change."""
    updated = order.model_copy(
        update={"status": status, "version": order.version + 1, "updated_at": ctx.at}
    )
    doc = store.save_order(ctx.conn, updated, previous=order)
    eventlog.record(
        ctx, updated, EventType.ORDER_STATUS_CHANGED, previous_status=order.status, order_doc=doc
    )
    return updated


def change_status(ctx: Context, command: ChangeOrderStatus) -> dict[str, Any]:
    """Inactivate, reactivate or close an order (S2, R3)."""
    order = store.load_order(ctx.conn, command.order_id)
    rules.check_order_transition(ctx.who, order, command.status)
    _check_version(order, command.expected_version)
    return view(set_status(ctx, order, command.status), ctx.who)


def get(ctx: Context, command: GetOrder) -> dict[str, Any]:
    """Fetch one order (S3)."""
    order = store.load_order(ctx.conn, command.order_id)
    rules.require_visible(ctx.who, order)
    return view(order, ctx.who)


def search(ctx: Context, command: SearchOrders) -> dict[str, Any]:
    """Search orders (S1); employers search their own orders only."""
    filters: dict[str, str] = {}
    if command.municipality:
        filters["municipality"] = command.municipality
    if command.status:
        filters["status"] = command.status.value
    if command.job_type:
        filters["job_type"] = command.job_type.value
    if command.employer:
        filters["employer_cvr"] = command.employer
    if ctx.who.kind == "employer":
        filters["employer_cvr"] = ctx.who.id
    total, page = search_index.search_orders(
        ctx.conn, text=command.text, filters=filters, limit=command.limit, offset=command.offset
    )
    return {"total": total, "results": [view(order, ctx.who) for order in page]}


def _processing(ctx: Context, command: TakeOrder | ReleaseOrder, take: bool) -> dict[str, Any]:
    order = store.load_order(ctx.conn, command.order_id)
    if not ctx.who.is_authority:
        raise Forbidden("only a jobcentre or an a-kasse takes an order into processing")
    if order.status in rules.CLOSED_STATUSES:
        raise InvalidTransition(f"job order {order.id} is {order.status}: it is closed")
    me = str(ctx.who)
    if take == (me in order.processing_by):
        state = "already processing" if take else "not processing"
        raise InvalidTransition(f"{me} is {state} job order {order.id}")
    processing_by = (
        [*order.processing_by, me]
        if take
        else [organisation for organisation in order.processing_by if organisation != me]
    )
    updated = order.model_copy(
        update={"processing_by": processing_by, "version": order.version + 1, "updated_at": ctx.at}
    )
    doc = store.save_order(ctx.conn, updated, previous=order)
    eventlog.record(
        ctx, updated, EventType.ORDER_STATUS_CHANGED, previous_status=order.status, order_doc=doc
    )
    return view(updated, ctx.who)


def take(ctx: Context, command: TakeOrder) -> dict[str, Any]:
    """Take an order into processing (R3a): the caller joins ``processing_by``."""
    return _processing(ctx, command, take=True)


def release(ctx: Context, command: ReleaseOrder) -> dict[str, Any]:
    """Stop processing an order: the caller leaves ``processing_by``."""
    return _processing(ctx, command, take=False)


def expire(ctx: Context, command: ExpireOrders) -> dict[str, Any]:
    """Close every open order whose placement deadline has passed (R3d), once each.

    Runs in one write transaction: a second run, from another worker process, finds the
    orders closed already and closes nothing twice.
    """
    if ctx.who.kind != "system":
        raise Forbidden("only the system expires job orders")
    today = command.today or ctx.at.date()
    rows = ctx.conn.execute(
        "SELECT id FROM orders WHERE status IN (?, ?) AND placement_deadline < ? ORDER BY id",
        (OrderStatus.PROCESSING.value, OrderStatus.INACTIVATED.value, today.isoformat()),
    ).fetchall()
    closed = []
    for row in rows:
        order = store.load_order(ctx.conn, int(row["id"]))
        if order.status not in (OrderStatus.PROCESSING, OrderStatus.INACTIVATED):
            # Closed by a concurrent command since the query above (where writers run
            # side by side): the order was locked and read again, as it is now.
            continue
        set_status(ctx, order, OrderStatus.CLOSED_EXPIRED)
        closed.append(order.id)
    return {"today": today.isoformat(), "closed": closed}
