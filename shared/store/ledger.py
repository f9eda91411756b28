"""The command ledger: the outcome of every write command, keyed by its command id."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.store.interface import Result, Row, Tx


def ledger_entry(conn: Tx, principal: str, command_id: str) -> Row | None:
    """The ledger row of an organisation's command id, if it was applied or rejected before."""
    row: Row | None = conn.execute(
        "SELECT * FROM commands WHERE principal = ? AND command_id = ?", (principal, command_id)
    ).fetchone()
    return row


def claim_read(
    conn: Tx, principal: str, command_id: str, at: datetime, forget_before: datetime
) -> bool:
    """Note that a read command was answered; False if it was answered before.

    Rows older than ``forget_before`` go: a command that old is refused as expired anyway.
    """
    conn.execute("DELETE FROM reads WHERE at < ?", (forget_before.isoformat(),))
    cursor = conn.execute(
        "INSERT INTO reads (principal, command_id, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (principal, command_id, at.isoformat()),
    )
    return cursor.rowcount == 1


def record_command(
    conn: Tx,
    *,
    command_id: str,
    kind: str,
    principal: str,
    digest: str,
    outcome: str,
    reply: dict[str, Any] | str,
    at: datetime,
) -> bool:
    """Write the ledger row of a command; False if the command id was already there.

    ``reply`` is the reply to keep, or its ``json.dumps`` text if the caller has it.
    """
    text = reply if isinstance(reply, str) else json.dumps(reply)
    cursor = conn.execute(
        "INSERT INTO commands (command_id, kind, principal, digest, outcome, reply, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (command_id, kind, principal, digest, outcome, text, at.isoformat()),
    )
    return cursor.rowcount == 1


#: The command kinds whose reply is a placement (with its CPR and note for the placer).
PLACEMENT_KINDS = frozenset({"register_placement", "change_placement_status"})
#: The digest of a ledger row whose command named a person since anonymised: the keyed
#: digest of its payload (CPR and note) is gone with the person, and a redelivery of the
#: command id gets the anonymised reply.
ANONYMISED_DIGEST = "anonymised"


def anonymise_replies(conn: Tx, commands: list[tuple[str, str]], placement_ids: set[int]) -> int:
    """Drop the person from the ledger rows of ``commands`` ((principal, command_id)) that
    answered with one of ``placement_ids``: the reply's CPR and note go, and the digest of
    the payload that held them; returns how many rows changed."""
    changed = 0
    for principal, command_id in commands:
        row = ledger_entry(conn, principal, command_id)
        if row is None or row["kind"] not in PLACEMENT_KINDS:
            continue
        reply = json.loads(row["reply"])
        result = reply.get("result") if isinstance(reply, dict) else None
        if not isinstance(result, dict) or result.get("id") not in placement_ids:
            continue
        result.update({"cpr": None, "note": None})
        conn.execute(
            "UPDATE commands SET reply = ?, digest = ? WHERE principal = ? AND command_id = ?",
            (json.dumps(reply), ANONYMISED_DIGEST, principal, command_id),
        )
        changed += 1
    return changed


#: The outcome of a claimed command until the command's transaction records its own.
PENDING = "pending"


def claim_command(
    conn: Tx, *, command_id: str, kind: str, principal: str, digest: str, at: datetime
) -> Result:
    """Claim a command id before applying the command: the statement's ``rowcount`` is 0
    if it was claimed before (read it when needed: on PostgreSQL that waits for it).

    The row goes in first, so that a concurrent delivery of the same command on another
    host waits for this transaction's row lock and then finds the row (its reply) instead
    of applying the command a second time. :func:`finish_command` fills in the outcome in
    the same transaction; no one ever sees the row without it.
    """
    cursor = conn.execute(
        "INSERT INTO commands (command_id, kind, principal, digest, outcome, reply, at)"
        " VALUES (?, ?, ?, ?, ?, '', ?) ON CONFLICT DO NOTHING",
        (command_id, kind, principal, digest, PENDING, at.isoformat()),
    )
    return cursor


def finish_command(conn: Tx, *, command_id: str, principal: str, outcome: str, reply: str) -> None:
    """Record the outcome and reply of a command :func:`claim_command` claimed."""
    conn.execute(
        "UPDATE commands SET outcome = ?, reply = ? WHERE principal = ? AND command_id = ?",
        (outcome, reply, principal, command_id),
    )


def forget_rejection(conn: Tx, principal: str, command_id: str) -> bool:
    """Delete a command's ledger row if it records a rejection, so a retry applies it.

    A row with outcome ``ok`` is kept: the command id belongs to a command that succeeded.
    """
    cursor = conn.execute(
        "DELETE FROM commands WHERE principal = ? AND command_id = ? AND outcome = 'rejected'",
        (principal, command_id),
    )
    return cursor.rowcount == 1
