"""The command ledger: the outcome of every write command, keyed by its command id."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.store.interface import Row, Tx


def ledger_entry(conn: Tx, command_id: str) -> Row | None:
    """The ledger row of a command id, if it was applied or rejected before."""
    row: Row | None = conn.execute(
        "SELECT * FROM commands WHERE command_id = ?", (command_id,)
    ).fetchone()
    return row


def record_command(
    conn: Tx,
    *,
    command_id: str,
    kind: str,
    principal: str,
    digest: str,
    outcome: str,
    reply: dict[str, Any],
    at: datetime,
) -> bool:
    """Write the ledger row of a command; False if the command id was already there."""
    cursor = conn.execute(
        "INSERT INTO commands (command_id, kind, principal, digest, outcome, reply, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (command_id, kind, principal, digest, outcome, json.dumps(reply), at.isoformat()),
    )
    return cursor.rowcount == 1


def forget_rejection(conn: Tx, command_id: str) -> bool:
    """Delete a command's ledger row if it records a rejection, so a retry applies it.

    A row with outcome ``ok`` is kept: the command id belongs to a command that succeeded.
    """
    cursor = conn.execute(
        "DELETE FROM commands WHERE command_id = ? AND outcome = 'rejected'", (command_id,)
    )
    return cursor.rowcount == 1
