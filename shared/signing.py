"""Signed commands: HMAC-SHA256 over the canonical envelope, one secret per organisation.

Whoever can write to Redis can put a message on a queue; a signature shows the command
really comes from the organisation it names. The signature covers every envelope field but
itself (principal, kind, ``command_id``, ``sent_at``, caseworker, correlation id, payload,
``key_id``), so nothing can be changed without breaking it. ``sent_at`` bounds a captured
command's life: outside the window it is refused as expired; inside it, a replay of a write
finds the command ledger and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.errors import NotAuthenticated

#: Bytes of randomness in a signing secret.
SECRET_BYTES = 32
#: How far a client's clock may run ahead of the worker's, in milliseconds.
CLOCK_SKEW_MS = 60_000


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One organisation's secret, named by ``key_id`` (several may be valid at once).

    A key with a ``scope`` may do only what its scope allows (:mod:`shared.keys`): the
    ``notify`` scope, bound to one ``caseworker``, is the desktop notifier's.
    """

    principal: str
    key_id: str
    secret: str
    #: What the key may do: ``None`` for everything its organisation may do, or a scope
    #: of :data:`shared.keys.SCOPES`.
    scope: str | None = None
    #: The caseworker a scoped key is bound to.
    caseworker: str | None = None

    @classmethod
    def generate(cls, principal: str) -> SigningKey:
        """A fresh random key for ``principal``."""
        return cls(
            principal=principal,
            key_id=secrets.token_hex(6),
            secret=base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode(),
        )

    def to_json(self) -> str:
        """The key file's content (``scope`` and ``caseworker`` only for a scoped key)."""
        fields: dict[str, str | None] = {
            "principal": self.principal,
            "key_id": self.key_id,
            "secret": self.secret,
        }
        if self.scope is not None:
            fields.update(scope=self.scope, caseworker=self.caseworker)
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> SigningKey:
        """Read a key file's content."""
        data = json.loads(text)
        scope, caseworker = data.get("scope"), data.get("caseworker")
        return cls(
            str(data["principal"]),
            str(data["key_id"]),
            str(data["secret"]),
            None if scope is None else str(scope),
            None if caseworker is None else str(caseworker),
        )


#: ``json.dumps(..., sort_keys=True, separators=(",", ":"))``, made once: the encoder is
#: immutable, and building one per signature costs a tenth of the encoding.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical(fields: dict[str, Any]) -> bytes:
    """The bytes a signature covers: every field but ``signature``, keys sorted."""
    signed = {name: value for name, value in fields.items() if name != "signature"}
    return _CANONICAL.encode(signed).encode()


def signature(fields: dict[str, Any], key: SigningKey) -> str:
    """HMAC-SHA256 of the canonical fields under ``key``, hex."""
    return hmac.new(key.secret.encode(), canonical(fields), hashlib.sha256).hexdigest()


def verify(fields: dict[str, Any], keys: dict[str, SigningKey]) -> SigningKey:
    """Check the signature of an envelope's JSON fields against the principal's valid keys.

    Returns the key that signed it. Raises :class:`NotAuthenticated` saying which check
    failed; never says what the right signature would have been.
    """
    principal = fields.get("principal")
    key_id, given = fields.get("key_id"), fields.get("signature")
    if not key_id or not given:
        raise NotAuthenticated(
            f"command from {principal} is not signed; clients sign every command"
        )
    key = keys.get(str(key_id))
    if key is None or key.principal != principal:
        raise NotAuthenticated(
            f"command from {principal} is signed with key {key_id}, which is not a valid key "
            "of that organisation (unknown, revoked or another organisation's)"
        )
    if not hmac.compare_digest(signature(fields, key), str(given)):
        raise NotAuthenticated(
            f"command from {principal}: the signature does not match its content"
        )
    return key


def check_age(sent_at: datetime, now: datetime, max_age_ms: int) -> None:
    """Refuse a command sent too long ago (or too far in the future) as expired."""
    if sent_at.tzinfo is None:
        raise NotAuthenticated("command's sent_at has no time zone; send it in UTC")
    if sent_at > now + timedelta(milliseconds=CLOCK_SKEW_MS):
        raise NotAuthenticated("command is dated in the future; check the client's clock")
    if now - sent_at > timedelta(milliseconds=max_age_ms):
        raise NotAuthenticated(
            f"command expired: sent at {sent_at.isoformat()}, more than {max_age_ms} ms ago; "
            "send it again"
        )
