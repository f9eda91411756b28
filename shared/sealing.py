"""Personal data sealed on the broker, and replies only their client can read and trust.

Everyone who can read Redis sees the queues, so a command's personal data travels sealed:
the client encrypts each field of :data:`SEALED_FIELDS` (the CPR, free-text notes) with
AES-256-GCM under a key derived from its organisation's signing secret, with the command id
and the field's name as associated data, before it signs the envelope. Only the foundation
(which holds the organisation's keys) opens them.

A reply goes back the same way: its body (result or error) is sealed for the client, and a
MAC binds it to the exact command it answers (the command id and the envelope's signature,
which covers the payload and ``sent_at``) and to its outcome. A client accepts only a reply
whose MAC verifies for the command it sent, so a forged or stale reply on the same list is
skipped, never believed.

Every key is HKDF-SHA256 of the UTF-8 bytes of the organisation's secret (no salt) with its
own ``info`` string, so the three uses never share a key. ``docs``/the README state the
byte-exact formats.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.errors import NotAuthenticated
from shared.signing import SigningKey

#: Payload fields (top level) that travel sealed: they may hold personal data.
SEALED_FIELDS = ("cpr", "note")
#: A sealed field's JSON form is an object with this one member (base64 nonce || ciphertext).
SEALED_MARK = "sealed"
#: Bytes of AES-GCM nonce, random per seal.
NONCE_BYTES = 12
#: Reply format version written in every reply as ``v``.
REPLY_VERSION = 1

_PAYLOAD_INFO = b"jobordre payload seal v1"
_REPLY_SEAL_INFO = b"jobordre reply seal v1"
_REPLY_MAC_INFO = b"jobordre reply mac v1"
#: Derived keys kept per process, one entry per (secret, purpose): a worker derives three per
#: command (payload, reply seal, reply MAC) from the few keys its clients sign with.
DERIVED_CACHE_ENTRIES = 1024


def derive(key: SigningKey, info: bytes) -> bytes:
    """A 32-byte key for one purpose, derived from the organisation's secret.

    Derived once per secret and purpose: whether a key may still be used is decided by the
    signature check (:mod:`shared.keys`), never by this cache.
    """
    return _derive(key.secret, info)


@functools.lru_cache(maxsize=DERIVED_CACHE_ENTRIES)
def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())


def _seal(secret: bytes, plaintext: bytes, aad: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    return base64.b64encode(nonce + AESGCM(secret).encrypt(nonce, plaintext, aad)).decode()


def _open(secret: bytes, sealed: str, aad: bytes) -> bytes:
    try:
        blob = base64.b64decode(sealed, validate=True)
        if len(blob) <= NONCE_BYTES:
            raise ValueError("too short")
        return AESGCM(secret).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (ValueError, InvalidTag, TypeError):
        raise NotAuthenticated(
            "a sealed field does not open with the key that signed the command; the client "
            "must seal with the same key it signs with"
        ) from None


def _field_aad(command_id: str, name: str) -> bytes:
    return f"{command_id}/{name}".encode()


def seal_payload(payload: dict[str, Any], command_id: str, key: SigningKey) -> dict[str, Any]:
    """A copy of ``payload`` with every :data:`SEALED_FIELDS` member that is set sealed."""
    secret = derive(key, _PAYLOAD_INFO)
    sealed = dict(payload)
    for name in SEALED_FIELDS:
        value = payload.get(name)
        if value is None or is_sealed(value):
            continue
        plaintext = json.dumps(value).encode()
        sealed[name] = {SEALED_MARK: _seal(secret, plaintext, _field_aad(command_id, name))}
    return sealed


def is_sealed(value: Any) -> bool:
    """Whether a payload member is in its sealed form."""
    return isinstance(value, dict) and set(value) == {SEALED_MARK}


def open_payload(payload: dict[str, Any], command_id: str, key: SigningKey) -> dict[str, Any]:
    """The payload with its sealed members opened; :class:`NotAuthenticated` if one fails.

    A plain (unsealed) member is left as it is: the payload models validate it, and a client
    that sends a CPR in clear has only exposed it on the broker, not bypassed a check.
    """
    secret = derive(key, _PAYLOAD_INFO)
    opened = dict(payload)
    for name, value in payload.items():
        if not is_sealed(value):
            continue
        text = value[SEALED_MARK]
        if not isinstance(text, str):
            raise NotAuthenticated(f"payload.{name}: a sealed field must be a base64 string")
        plaintext = _open(secret, text, _field_aad(command_id, name))
        try:
            opened[name] = json.loads(plaintext)
        except ValueError:
            raise NotAuthenticated(f"payload.{name}: the sealed field is not JSON") from None
    return opened


def _mac_input(command_id: str, request_signature: str, ok: bool, body: str) -> bytes:
    outcome = "ok" if ok else "error"
    return f"jobordre-reply-v1\n{command_id}\n{request_signature}\n{outcome}\n{body}".encode()


def reply_mac(key: SigningKey, command_id: str, request_signature: str, ok: bool, body: str) -> str:
    """HMAC-SHA256 (hex) that binds a reply body to the command it answers."""
    return hmac.new(
        derive(key, _REPLY_MAC_INFO),
        _mac_input(command_id, request_signature, ok, body),
        hashlib.sha256,
    ).hexdigest()


def seal_reply(reply: dict[str, Any], key: SigningKey, request_signature: str) -> dict[str, Any]:
    """The wire form of a foundation reply for the client whose command ``key`` verified.

    ``{"v", "command_id", "ok", "key_id", "body", "mac"}``: ``body`` is the sealed JSON of
    ``{"result": ...}`` or ``{"error": ...}``.
    """
    command_id = str(reply["command_id"])
    inner = {"result": reply["result"]} if reply["ok"] else {"error": reply["error"]}
    body = _seal(derive(key, _REPLY_SEAL_INFO), json.dumps(inner).encode(), command_id.encode())
    return {
        "v": REPLY_VERSION,
        "command_id": command_id,
        "ok": bool(reply["ok"]),
        "key_id": key.key_id,
        "body": body,
        "mac": reply_mac(key, command_id, request_signature, bool(reply["ok"]), body),
    }


def open_reply(
    wire: dict[str, Any], key: SigningKey, command_id: str, request_signature: str
) -> dict[str, Any] | None:
    """The reply ``{"command_id", "ok", "result"|"error"}`` if ``wire`` answers this command.

    ``None`` for anything else (another send of the id, another organisation's reply, a
    forgery, an old format): the caller keeps waiting for its own reply.
    """
    try:
        if wire.get("v") != REPLY_VERSION or wire.get("command_id") != command_id:
            return None
        if wire.get("key_id") != key.key_id:
            return None
        ok, body, mac = wire.get("ok"), wire.get("body"), wire.get("mac")
        if not isinstance(ok, bool) or not isinstance(body, str) or not isinstance(mac, str):
            return None
        expected = reply_mac(key, command_id, request_signature, ok, body)
        if not hmac.compare_digest(expected, mac):
            return None
        inner = json.loads(_open(derive(key, _REPLY_SEAL_INFO), body, command_id.encode()))
    except (NotAuthenticated, ValueError, AttributeError):
        return None
    if not isinstance(inner, dict):
        return None
    return {"command_id": command_id, "ok": ok, **inner}
