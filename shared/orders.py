"""Operations on job orders: register, update, change status, search, fetch (S1–S3)."""

from __future__ import annotations

from typing import Any

from shared import rules, store
from shared.commands import (
    ChangeOrderStatus,
    GetOrder,
    OrderChanges,
    RegisterOrder,
    SearchOrders,
    UpdateOrder,
)
from shared.context import Context
from shared.errors import VersionConflict
from shared.models import JobOrder, OrderStatus, Origin, Principal

#: Change-log types, also the event types organisations receive.
ORDER_REGISTERED = "order_registered"
ORDER_UPDATED = "order_updated"
ORDER_STATUS_CHANGED = "order_status_changed"

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
    store.insert_order(ctx.conn, order)
    store.append_change(ctx.conn, order, ORDER_REGISTERED, str(ctx.who), ctx.at, ctx.command_id)
    return view(order, ctx.who)


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
        ctx.who, order, patch.job_type, patch.employer.cvr if patch.employer else None
    )
    _check_version(order, command.expected_version)
    changes = {name: getattr(patch, name) for name in patch.model_fields_set}
    updated = order.model_copy(
        update={**changes, "version": order.version + 1, "updated_at": ctx.at}
    )
    # Re-validate the whole order: a patch may be valid alone and not in combination.
    updated = JobOrder.model_validate(updated.model_dump())
    store.save_order(ctx.conn, updated)
    store.append_change(ctx.conn, updated, ORDER_UPDATED, str(ctx.who), ctx.at, ctx.command_id)
    return view(updated, ctx.who)


def set_status(ctx: Context, order: JobOrder, status: OrderStatus) -> JobOrder:
    """Move an order to ``status`` (already checked) and log the change."""
    updated = order.model_copy(
        update={"status": status, "version": order.version + 1, "updated_at": ctx.at}
    )
    store.save_order(ctx.conn, updated)
    store.append_change(
        ctx.conn, updated, ORDER_STATUS_CHANGED, str(ctx.who), ctx.at, ctx.command_id
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
    total, page = store.search_orders(
        ctx.conn, text=command.text, filters=filters, limit=command.limit, offset=command.offset
    )
    return {"total": total, "results": [view(order, ctx.who) for order in page]}


def changes(ctx: Context, command: OrderChanges) -> dict[str, Any]:
    """Orders changed after a cursor (S3 "also updated orders"), with each order as it is now."""
    rows = store.read_changes(
        ctx.conn,
        command.since,
        command.limit,
        ctx.who.id if ctx.who.kind == "employer" else None,
    )
    current: dict[int, dict[str, Any]] = {}
    listed = []
    for row in rows:
        order_id = int(row["order_id"])
        if order_id not in current:
            current[order_id] = view(store.load_order(ctx.conn, order_id), ctx.who)
        listed.append(
            {
                "cursor": int(row["seq"]),
                "type": row["type"],
                "at": row["at"],
                "order_id": order_id,
                "version": int(row["version"]),
                "status": row["status"],
                "by": row["principal"],
                "order": current[order_id],
            }
        )
    cursor = int(rows[-1]["seq"]) if rows else command.since
    return {"changes": listed, "cursor": cursor}
