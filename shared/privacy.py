"""Personal data: a citizen's access request, and anonymisation after retention."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from shared import access, store
from shared.commands import AnonymisePlacements, AuditPerson
from shared.context import Context
from shared.errors import Forbidden


def audit(ctx: Context, command: AuditPerson) -> dict[str, Any]:
    """A citizen's access request: who read or changed the person's data, oldest first.

    The foundation's data-protection role (``star``) sees the whole history. A jobcentre or
    an a-kasse sees only its own organisation's dealings with the person: learning which
    other organisation placed the person, and on which order, would undo the masking of
    that organisation's placements. Every request is itself in the person's access log.
    """
    if ctx.who.kind == "star":
        entries = access.history(ctx.conn, command.cpr)
    elif ctx.who.is_authority:
        entries = access.history(ctx.conn, command.cpr, organisation=str(ctx.who))
    else:
        raise Forbidden(
            "a jobcentre or an a-kasse answers an access request about its own dealings with "
            "the person; the whole history is answered by the foundation (principal star)"
        )
    ctx.accesses.append(access.Access(command.cpr, access.AUDIT, None, None))
    return {"entries": entries, "count": len(entries)}


def anonymise(ctx: Context, command: AnonymisePlacements) -> dict[str, Any]:
    """Remove the CPR and the comments of placements on orders closed ``retention_days``
    ago or more; the placements and their log entries stay, without the person. The
    command ledger's replies of those placements lose them too (a ``command_result`` asked
    later shows neither), and so do the digests of the payloads that carried them."""
    if ctx.who.kind != "system":
        raise Forbidden("only the system anonymises placements")
    cutoff = (ctx.at - timedelta(days=command.retention_days)).isoformat()
    rows = ctx.conn.execute(
        "SELECT p.id, p.order_id, p.cpr FROM placements p JOIN orders o ON o.id = p.order_id"
        " WHERE o.status IN ('closed_filled', 'closed_expired') AND o.updated_at <= ?"
        " AND p.cpr IS NOT NULL",
        (cutoff,),
    ).fetchall()
    for row in rows:
        ctx.accessed(row["cpr"], access.ANONYMISE, row["order_id"], row["id"])
    ctx.conn.executemany(
        "UPDATE placements SET cpr = NULL, note = NULL WHERE id = ?", [(r["id"],) for r in rows]
    )
    ctx.conn.executemany(
        "UPDATE placement_log SET note = NULL WHERE placement_id = ?", [(r["id"],) for r in rows]
    )
    _anonymise_ledger(ctx, {int(r["order_id"]) for r in rows}, {int(r["id"]) for r in rows})
    return {"anonymised": len(rows), "closed_before": cutoff}


def _anonymise_ledger(ctx: Context, order_ids: set[int], placement_ids: set[int]) -> None:
    """The ledger rows of the commands that registered or changed ``placement_ids``, found
    through their placement-log events (each names its command and who sent it)."""
    commands: list[tuple[str, str]] = []
    for order_id in sorted(order_ids):
        for event in ctx.conn.execute(
            "SELECT header, command_id FROM events WHERE order_id = ? AND type = ?"
            " AND command_id IS NOT NULL",
            (order_id, "placement_log_updated"),
        ).fetchall():
            commands.append((str(json.loads(event["header"])["by"]), str(event["command_id"])))
    store.anonymise_replies(ctx.conn, commands, placement_ids)
