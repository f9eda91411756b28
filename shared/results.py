"""A client picks up the result of a command it sent earlier (``jobordre result``).

The command ledger keeps the reply of every write command for good, under the organisation
that sent it; this reads it back for that organisation only. Personal data are masked in
the ledger, so a CPR in a stored result reads ``**********``. Reads are not kept: their
command id gets ``not_found``.
"""

from __future__ import annotations

import json
from typing import Any

from shared import store
from shared.commands import CommandResult
from shared.context import Context
from shared.errors import NotFound


def command_result(ctx: Context, command: CommandResult) -> dict[str, Any]:
    """``{"command_id", "kind", "outcome", "at", "reply"}`` of one of the caller's commands."""
    row = store.ledger_entry(ctx.conn, str(ctx.who), command.command_id)
    if row is None:
        raise NotFound(
            f"command {command.command_id}: no result stored for {ctx.who}; it is not applied "
            "yet (wait, or resend it with the same --command-id), it was another "
            "organisation's, or it was a read (reads are not kept)"
        )
    return {
        "command_id": command.command_id,
        "kind": row["kind"],
        "outcome": row["outcome"],
        "at": row["at"],
        "reply": json.loads(row["reply"]),
    }
