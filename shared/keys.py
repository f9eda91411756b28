"""The organisations' signing keys in the store: create, rotate, revoke, look up."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from shared.errors import NotFound
from shared.signing import SigningKey


def create(conn: sqlite3.Connection, principal: str, at: datetime) -> SigningKey:
    """A new valid key for ``principal``; keys it had stay valid (that is a rotation)."""
    key = SigningKey.generate(principal)
    conn.execute(
        "INSERT INTO signing_keys (key_id, principal, secret, created_at) VALUES (?, ?, ?, ?)",
        (key.key_id, key.principal, key.secret, at.isoformat()),
    )
    return key


def revoke(conn: sqlite3.Connection, principal: str, key_id: str, at: datetime) -> None:
    """Make one key of ``principal`` invalid from now on."""
    cursor = conn.execute(
        "UPDATE signing_keys SET revoked_at = ? WHERE key_id = ? AND principal = ?"
        " AND revoked_at IS NULL",
        (at.isoformat(), key_id, principal),
    )
    if cursor.rowcount != 1:
        raise NotFound(f"{principal} has no valid key {key_id}; see `jobordre keys list`")


def valid_keys(conn: sqlite3.Connection, principal: str) -> dict[str, SigningKey]:
    """The keys of ``principal`` that are not revoked, by key id."""
    rows = conn.execute(
        "SELECT key_id, principal, secret FROM signing_keys WHERE principal = ?"
        " AND revoked_at IS NULL",
        (principal,),
    ).fetchall()
    return {row[0]: SigningKey(row[1], row[0], row[2]) for row in rows}


def listing(conn: sqlite3.Connection, principal: str | None) -> list[dict[str, str | None]]:
    """Every key (without its secret), newest first; of one principal if given."""
    rows = conn.execute(
        "SELECT key_id, principal, created_at, revoked_at FROM signing_keys"
        " WHERE ? IS NULL OR principal = ? ORDER BY created_at DESC",
        (principal, principal),
    ).fetchall()
    return [
        {"key_id": r[0], "principal": r[1], "created_at": r[2], "revoked_at": r[3]} for r in rows
    ]
