"""What caseworkers follow, stored in the foundation so a caseworker keeps it across desks.

``follow`` and ``unfollow`` answer with the one follow they were about and how many the
caseworker has now: their replies are stored in the command ledger, so a reply that held
the whole list grew the ledger with the square of the follows and kept the write lock for
the time to read them. ``following`` lists them. A caseworker follows at most
:attr:`Context.max_follows` things (``JOBORDRE_MAX_FOLLOWS_PER_CASEWORKER``).
"""

from __future__ import annotations

from typing import Any

from shared import store
from shared.commands import Follow, Following
from shared.context import Context
from shared.errors import Forbidden, InvalidInput

#: Target types of a follow.
ORDER, EMPLOYER, PLACEMENTS = "order", "employer", "placements"
#: The target of a follow of the organisation's own placements.
PLACEMENTS_TARGET = "*"
#: Most entries of each list in a ``follow``/``unfollow`` reply: the ledger keeps every
#: reply, so a whole list there grows it with the square of the follows.
REPLY_LIST_MAX = 100
#: A LIMIT no list reaches.
ALL = 2**62


def _target(command: Follow) -> tuple[str, str]:
    if command.order_id is not None:
        return ORDER, str(command.order_id)
    if command.employer is not None:
        return EMPLOYER, command.employer
    return PLACEMENTS, PLACEMENTS_TARGET


def _require_authority(ctx: Context) -> None:
    if not ctx.who.is_authority:
        raise Forbidden("caseworkers of a jobcentre or an a-kasse follow job orders")


def follow(ctx: Context, command: Follow) -> dict[str, Any]:
    """Start following an order, an employer's orders, or the organisation's placements."""
    _require_authority(ctx)
    target_type, target = _target(command)
    if target_type == ORDER:
        store.load_order(ctx.conn, int(target))  # NotFound for an order that doesn't exist
    count = _count(ctx, command.caseworker)
    if count >= ctx.max_follows and not _follows(ctx, command.caseworker, target_type, target):
        raise InvalidInput(
            f"caseworker: {command.caseworker} follows {count} things already, the most one "
            f"caseworker may (JOBORDRE_MAX_FOLLOWS_PER_CASEWORKER = {ctx.max_follows}); "
            "unfollow some first, or follow an employer or --placements instead of each order",
            field="caseworker",
        )
    cursor = ctx.conn.execute(
        "INSERT INTO follows (organisation, caseworker, target_type, target, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (str(ctx.who), command.caseworker, target_type, target, ctx.at.isoformat()),
    )
    changed = cursor.rowcount == 1
    return _one(ctx, command, changed=changed, count=count + int(changed))


def unfollow(ctx: Context, command: Follow) -> dict[str, Any]:
    """Stop following; unfollowing what one does not follow changes nothing."""
    _require_authority(ctx)
    target_type, target = _target(command)
    cursor = ctx.conn.execute(
        "DELETE FROM follows WHERE organisation = ? AND caseworker = ? AND target_type = ?"
        " AND target = ?",
        (str(ctx.who), command.caseworker, target_type, target),
    )
    return _one(ctx, command, changed=cursor.rowcount == 1, count=_count(ctx, command.caseworker))


def _count(ctx: Context, caseworker: str) -> int:
    row = ctx.conn.execute(
        "SELECT count(*) FROM follows WHERE organisation = ? AND caseworker = ?",
        (str(ctx.who), caseworker),
    ).fetchone()
    return int(row[0])


def _follows(ctx: Context, caseworker: str, target_type: str, target: str) -> bool:
    row = ctx.conn.execute(
        "SELECT 1 FROM follows WHERE organisation = ? AND caseworker = ? AND target_type = ?"
        " AND target = ?",
        (str(ctx.who), caseworker, target_type, target),
    ).fetchone()
    return row is not None


def _one(ctx: Context, command: Follow, *, changed: bool, count: int) -> dict[str, Any]:
    """The reply of ``follow``/``unfollow``: the one follow, whether this call changed it,
    and how many the caseworker follows now; and, for the clients that read them, the lists
    ``following`` gives, each cut at :data:`REPLY_LIST_MAX` (``truncated`` says so)."""
    return {
        **_following(ctx, command.caseworker, limit=REPLY_LIST_MAX),
        "order_id": command.order_id,
        "employer": command.employer,
        "placements": command.placements,
        "changed": changed,
        "count": count,
    }


def _following(ctx: Context, caseworker: str, limit: int | None = None) -> dict[str, Any]:
    """What ``caseworker`` follows; with ``limit``, each list cut at that many entries."""
    # One more than kept, so that a cut list knows it was cut.
    most = ALL if limit is None else limit + 1
    orders = [
        int(row[0])
        for row in ctx.conn.execute(
            "SELECT CAST(target AS INTEGER) AS id FROM follows WHERE organisation = ?"
            " AND caseworker = ? AND target_type = ? ORDER BY id LIMIT ?",
            (str(ctx.who), caseworker, ORDER, most),
        )
    ]
    employers = [
        str(row[0])
        for row in ctx.conn.execute(
            "SELECT target FROM follows WHERE organisation = ? AND caseworker = ?"
            " AND target_type = ? ORDER BY target LIMIT ?",
            (str(ctx.who), caseworker, EMPLOYER, most),
        )
    ]
    placements = _follows(ctx, caseworker, PLACEMENTS, PLACEMENTS_TARGET)
    placed_orders = (
        [
            int(row[0])
            for row in ctx.conn.execute(
                "SELECT DISTINCT order_id FROM placements WHERE placed_by = ?"
                " ORDER BY order_id LIMIT ?",
                (str(ctx.who), most),
            )
        ]
        if placements
        else []
    )
    listed: dict[str, Any] = {
        "caseworker": caseworker,
        "organisation": str(ctx.who),
        "orders": orders[:limit],
        "employers": employers[:limit],
        "placements_of_my_organisation": placements,
        "placed_orders": placed_orders[:limit],
    }
    if limit is not None:
        lists = (orders, employers, placed_orders)
        listed["truncated"] = any(len(each) > limit for each in lists)
    return listed


def following(ctx: Context, command: Following) -> dict[str, Any]:
    """What a caseworker of the calling organisation follows."""
    _require_authority(ctx)
    return _following(ctx, command.caseworker)
