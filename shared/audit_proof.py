"""Proof of an access-log row: the signed command it came from and the key that verifies it.

An access-log row says an organisation read or changed a person's data. For a protocol 2
command the store keeps the envelope exactly as the organisation signed it
(``signed_commands``), and only the organisation holds the private key that made that
signature: so a row can be shown to a data-protection authority with the envelope and the
organisation's public key, and anyone can check that the organisation sent that command
(RFC 8785 bytes of the envelope without ``signature``, Ed25519). The foundation cannot make
such a proof for a command it made up. Rows of protocol 1 commands have no such proof (an
HMAC proves nothing to a third party): they are listed with ``proof: null``.
"""

from __future__ import annotations

import json
from typing import Any

from shared import access, keys, sealing_v2
from shared.canonical_v2 import signed_bytes
from shared.errors import InvalidInput
from shared.signing_v2 import FoundationKey, verifies
from shared.store.interface import Tx


def proofs(conn: Tx, cpr: str, foundation: FoundationKey | None = None) -> list[dict[str, Any]]:
    """Every access-log row of the person, oldest first, each with its proof when it has one.

    A proof holds the signed envelope as it travelled, its canonical bytes, the signer's
    public key and whether the signature verifies; with ``foundation`` also the payload as
    the foundation opened it.
    """
    rows = conn.execute(
        "SELECT a.id, a.at, a.organisation, a.caseworker, a.action, a.order_id,"
        " a.placement_id, a.command_id, s.key_id, s.envelope FROM access_log a"
        " LEFT JOIN signed_commands s"
        " ON s.principal = a.organisation AND s.command_id = a.command_id"
        " WHERE a.person = ? ORDER BY a.id",
        (access.person(conn, cpr),),
    ).fetchall()
    found = []
    for row in rows:
        entry: dict[str, Any] = {
            "id": row[0],
            "at": row[1],
            "organisation": row[2],
            "caseworker": row[3],
            "action": row[4],
            "order_id": row[5],
            "placement_id": row[6],
            "command_id": row[7],
            "proof": None,
        }
        if row[9] is not None:
            entry["proof"] = _proof(conn, str(row[8]), json.loads(row[9]), foundation)
        found.append(entry)
    return found


def _proof(
    conn: Tx, key_id: str, envelope: dict[str, Any], foundation: FoundationKey | None
) -> dict[str, Any]:
    key = keys.public_key(conn, key_id, revoked=True)
    proof: dict[str, Any] = {
        "envelope": envelope,
        "canonical": signed_bytes(envelope).decode(),
        "key": None if key is None else {**key.to_dict(), "algorithm": "Ed25519"},
        "verified": key is not None
        and key.principal == envelope.get("principal")
        and verifies(envelope, key.sign_public),
    }
    if foundation is not None:
        try:
            proof["opened_payload"] = sealing_v2.open_payload(
                envelope.get("payload"),
                str(envelope.get("principal")),
                str(envelope.get("command_id")),
                str(envelope.get("kind")),
                foundation,
            )
        except InvalidInput as error:
            proof["opened_payload"] = {"error": error.message}
    return proof
