"""What caseworkers follow, stored in the foundation so a caseworker keeps it across desks."""

from __future__ import annotations

from typing import Any

from shared import store
from shared.commands import Follow, Following
from shared.context import Context
from shared.errors import Forbidden

#: Target types of a follow.
ORDER, EMPLOYER, PLACEMENTS = "order", "employer", "placements"


def _target(command: Follow) -> tuple[str, str]:
    if command.order_id is not None:
        return ORDER, str(command.order_id)
    if command.employer is not None:
        return EMPLOYER, command.employer
    return PLACEMENTS, "*"


def _require_authority(ctx: Context) -> None:
    if not ctx.who.is_authority:
        raise Forbidden("caseworkers of a jobcentre or an a-kasse follow job orders")


def follow(ctx: Context, command: Follow) -> dict[str, Any]:
    """Start following an order, an employer's orders, or the organisation's placements."""
    _require_authority(ctx)
    target_type, target = _target(command)
    if target_type == ORDER:
        store.load_order(ctx.conn, int(target))  # NotFound for an order that doesn't exist
    ctx.conn.execute(
        "INSERT INTO follows (organisation, caseworker, target_type, target, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (str(ctx.who), command.caseworker, target_type, target, ctx.at.isoformat()),
    )
    return _following(ctx, command.caseworker)


def unfollow(ctx: Context, command: Follow) -> dict[str, Any]:
    """Stop following; unfollowing what one does not follow changes nothing."""
    _require_authority(ctx)
    target_type, target = _target(command)
    ctx.conn.execute(
        "DELETE FROM follows WHERE organisation = ? AND caseworker = ? AND target_type = ?"
        " AND target = ?",
        (str(ctx.who), command.caseworker, target_type, target),
    )
    return _following(ctx, command.caseworker)


def _following(ctx: Context, caseworker: str) -> dict[str, Any]:
    rows = ctx.conn.execute(
        "SELECT target_type, target FROM follows WHERE organisation = ? AND caseworker = ?"
        " ORDER BY target_type, target",
        (str(ctx.who), caseworker),
    ).fetchall()
    orders = sorted(int(row["target"]) for row in rows if row["target_type"] == ORDER)
    employers = [row["target"] for row in rows if row["target_type"] == EMPLOYER]
    placements = any(row["target_type"] == PLACEMENTS for row in rows)
    placed_orders = (
        [
            int(row[0])
            for row in ctx.conn.execute(
                "SELECT DISTINCT order_id FROM placements WHERE placed_by = ? ORDER BY order_id",
                (str(ctx.who),),
            )
        ]
        if placements
        else []
    )
    return {
        "caseworker": caseworker,
        "organisation": str(ctx.who),
        "orders": orders,
        "employers": employers,
        "placements_of_my_organisation": placements,
        "placed_orders": placed_orders,
    }


def following(ctx: Context, command: Following) -> dict[str, Any]:
    """What a caseworker of the calling organisation follows."""
    _require_authority(ctx)
    return _following(ctx, command.caseworker)
