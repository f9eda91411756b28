"""The organisations' signing keys in the store: create, rotate, revoke, look up."""

from __future__ import annotations

from datetime import datetime

from shared.envelope import decode_envelope, new_envelope
from shared.errors import InvalidInput, NotAuthenticated, NotFound
from shared.signing import SigningKey, verify
from shared.store.interface import Tx


def create(conn: Tx, principal: str, at: datetime) -> SigningKey:
    """A new valid key for ``principal``; keys it had stay valid (that is a rotation)."""
    key = SigningKey.generate(principal)
    conn.execute(
        "INSERT INTO signing_keys (key_id, principal, secret, created_at) VALUES (?, ?, ?, ?)",
        (key.key_id, key.principal, key.secret, at.isoformat()),
    )
    return key


def revoke(conn: Tx, principal: str, key_id: str, at: datetime) -> None:
    """Make one key of ``principal`` invalid from now on."""
    cursor = conn.execute(
        "UPDATE signing_keys SET revoked_at = ? WHERE key_id = ? AND principal = ?"
        " AND revoked_at IS NULL",
        (at.isoformat(), key_id, principal),
    )
    if cursor.rowcount != 1:
        raise NotFound(f"{principal} has no valid key {key_id}; see `jobordre keys list`")


def valid_keys(conn: Tx, principal: str) -> dict[str, SigningKey]:
    """The keys of ``principal`` that are not revoked, by key id."""
    rows = conn.execute(
        "SELECT key_id, principal, secret FROM signing_keys WHERE principal = ?"
        " AND revoked_at IS NULL",
        (principal,),
    ).fetchall()
    return {row[0]: SigningKey(row[1], row[0], row[2]) for row in rows}


def listing(conn: Tx, principal: str | None) -> list[dict[str, str | None]]:
    """Every key (without its secret), newest first; of one principal if given."""
    columns = "SELECT key_id, principal, created_at, revoked_at FROM signing_keys"
    rows = (
        conn.execute(columns + " ORDER BY created_at DESC").fetchall()
        if principal is None
        else conn.execute(
            columns + " WHERE principal = ? ORDER BY created_at DESC", (principal,)
        ).fetchall()
    )
    return [
        {"key_id": r[0], "principal": r[1], "created_at": r[2], "revoked_at": r[3]} for r in rows
    ]


def every_key(conn: Tx, principal: str) -> dict[str, SigningKey]:
    """Every key ``principal`` ever had, revoked ones included, by key id."""
    rows = conn.execute(
        "SELECT key_id, principal, secret FROM signing_keys WHERE principal = ?", (principal,)
    ).fetchall()
    return {row[0]: SigningKey(row[1], row[0], row[2]) for row in rows}


def resign(conn: Tx, raw: str) -> str:
    """A kept command, signed afresh for a retry by the foundation's operator.

    A retried command may be older than the signature window. It is re-signed, with the
    same command id and payload, with a valid key of its organisation, but only if its
    original signature was made with a key that organisation had: an operator's retry
    must never turn a forged command into a real one.
    """
    envelope = decode_envelope(raw)
    try:
        verify(envelope.model_dump(mode="json"), every_key(conn, envelope.principal))
    except NotAuthenticated:
        raise InvalidInput(
            f"command {envelope.command_id} was not signed by {envelope.principal}, so it "
            "cannot be retried; purge it",
            field="id",
        ) from None
    valid = valid_keys(conn, envelope.principal)
    if not valid:
        raise InvalidInput(
            f"{envelope.principal} has no valid signing key, so its command cannot be retried; "
            f"create one with `jobordre keys create {envelope.principal}` first",
            field="id",
        )
    return new_envelope(
        envelope.kind,
        envelope.principal,
        envelope.payload,
        command_id=envelope.command_id,
        correlation_id=envelope.correlation_id,
        caseworker=envelope.caseworker,
        key=next(iter(valid.values())),
    ).to_json()
