"""The access log of personal data: who read or changed which person's placements.

A citizen may ask who looked at their data; ``jobordre audit person CPR`` answers from this
log. The log names the person by a keyed hash of the CPR (HMAC-SHA256 under a secret of the
foundation's own), so the log itself holds no CPR number, and a leaked copy of it cannot be
searched by trying every CPR without that secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from shared.store.interface import Tx

#: Name of the access log's hash key in ``foundation_secrets``.
HASH_KEY = "access_log_hash_key"

#: Actions written to the log.
READ, REGISTER, CHANGE, ANONYMISE, AUDIT = "read", "register", "change", "anonymise", "audit"
#: A refused placement that showed the caller the person is on the order already.
PROBE = "probe"


@dataclass(frozen=True, slots=True)
class Access:
    """One read or change of one person's data, waiting to be written."""

    cpr: str
    action: str
    order_id: int | None
    placement_id: int | None


def foundation_secret(conn: Tx, name: str) -> bytes:
    """A 32-byte secret of the foundation's own, made on first use and kept for good."""
    memo_key = _memo_key(name)
    known: bytes | None = conn.memo.get(memo_key)
    if known is not None:
        return known
    row = conn.execute("SELECT value FROM foundation_secrets WHERE name = ?", (name,)).fetchone()
    if row is not None:
        # Only a secret read back is remembered: one made here is not committed yet, and
        # the transaction may still roll back and another process make a different one.
        conn.memo[memo_key] = secret = bytes.fromhex(row[0])
        return secret
    conn.execute(
        "INSERT INTO foundation_secrets (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (name, secrets.token_hex(32)),
    )
    row = conn.execute("SELECT value FROM foundation_secrets WHERE name = ?", (name,)).fetchone()
    return bytes.fromhex(row[0])


def remembered_secret(conn: Tx, name: str) -> bytes | None:
    """The secret :func:`foundation_secret` read back before, if it did: no statement, no
    transaction needed (None until a committed one was read)."""
    known: bytes | None = conn.memo.get(_memo_key(name))
    return known


def _memo_key(name: str) -> str:
    return f"foundation_secret:{name}"


def _hash_key(conn: Tx) -> bytes:
    return foundation_secret(conn, HASH_KEY)


def person(conn: Tx, cpr: str) -> str:
    """The keyed hash that names a person in the access log."""
    return hmac.new(_hash_key(conn), cpr.encode(), hashlib.sha256).hexdigest()


def write(
    conn: Tx,
    accesses: list[Access],
    organisation: str,
    caseworker: str | None,
    at: datetime,
    command_id: str | None = None,
) -> None:
    """Write accesses to the log (inside a write transaction): one row per person, action
    and placement per command, however often the command read the same row. ``command_id``
    names the command they came from (with its signed envelope, for a protocol 2 command)."""
    conn.executemany(
        "INSERT INTO access_log (at, person, organisation, caseworker, action, order_id,"
        " placement_id, command_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                at.isoformat(),
                person(conn, a.cpr),
                organisation,
                caseworker,
                a.action,
                a.order_id,
                a.placement_id,
                command_id,
            )
            for a in dict.fromkeys(accesses)
        ],
    )


def history(conn: Tx, cpr: str, organisation: str | None = None) -> list[dict[str, object]]:
    """Every logged access to the person's data, oldest first; only ``organisation``'s own
    when it is given."""
    sql = (
        "SELECT at, organisation, caseworker, action, order_id, placement_id FROM access_log"
        " WHERE person = ?"
    )
    args: tuple[str, ...] = (person(conn, cpr),)
    if organisation is not None:
        sql += " AND organisation = ?"
        args += (organisation,)
    rows = conn.execute(sql + " ORDER BY id", args).fetchall()
    return [dict(row) for row in rows]
