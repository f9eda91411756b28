"""Protocol 2's sealing: the whole payload to the foundation, the whole reply to the client.

A seal is the base mode of HPKE (RFC 9180) with its steps written out, so that any
X25519 / HKDF-SHA256 / AES-256-GCM library reproduces it byte for byte::

    skE, pkE   = a fresh X25519 key pair per seal
    dh         = X25519(skE, pkR)
    okm        = HKDF-SHA256(ikm=dh, salt=32 zero bytes, info=label || pkE || pkR, L=44)
    key, nonce = okm[:32], okm[32:]
    sealed     = {"enc": b64url(pkE), "ct": b64url(AES-256-GCM(key, nonce, plaintext, aad))}

A command's payload is sealed to the foundation's X25519 key with the associated data
``principal|command_id|kind``, so it opens only for the command it was made for; a reply
body is sealed to the X25519 key of the organisation's key that signed the command, with
``principal|command_id|in_reply_to``, and the reply is signed by the foundation's Ed25519
key over its RFC 8785 form. A client accepts only a reply that names its last send and
verifies under the foundation's key: nothing else on the reply list is believed.
"""

from __future__ import annotations

import functools
import hmac
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.canonical_v2 import b64url, canonical, unb64url
from shared.errors import InvalidInput
from shared.signing_v2 import (
    KEY_BYTES,
    VERSION,
    FoundationKey,
    FoundationPublic,
    OrganisationKey,
    sign,
    verifies,
)

#: HKDF salt of every seal, spelled out: 32 zero bytes (some HMACs refuse an empty key).
SALT = bytes(32)
#: HKDF info label of a sealed command payload (followed by pkE and pkR).
PAYLOAD_LABEL = b"jobordre v2 payload"
#: HKDF info label of a sealed reply body (followed by pkE and pkR).
REPLY_LABEL = b"jobordre v2 reply"
#: The one member of a sealed payload: ``{"sealed": {"enc": ..., "ct": ...}}``.
SEALED_MARK = "sealed"
#: AES-GCM key and nonce bytes drawn from HKDF.
_KEY_BYTES, _NONCE_BYTES = 32, 12


def _public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


#: Recipients' private keys kept parsed with their public key (a scalar multiplication to
#: derive): the foundation opens every payload with one key, a client every reply with its own.
RECIPIENT_ENTRIES = 64


@functools.lru_cache(maxsize=RECIPIENT_ENTRIES)
def _recipient(private: bytes) -> tuple[X25519PrivateKey, bytes]:
    own = X25519PrivateKey.from_private_bytes(private)
    return own, _public(own)


def _key_and_nonce(dh: bytes, label: bytes, enc: bytes, recipient: bytes) -> tuple[bytes, bytes]:
    if not any(dh):
        raise ValueError("X25519 gave the all-zero shared secret")
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=_KEY_BYTES + _NONCE_BYTES,
        salt=SALT,
        info=label + enc + recipient,
    ).derive(dh)
    return okm[:_KEY_BYTES], okm[_KEY_BYTES:]


def seal(
    plaintext: bytes,
    recipient: bytes,
    label: bytes,
    aad: bytes,
    *,
    ephemeral: bytes | None = None,
) -> dict[str, str]:
    """``{"enc", "ct"}``: ``plaintext`` sealed to the X25519 public key ``recipient``.

    ``ephemeral`` (an X25519 private key) is for test vectors only; a seal draws a fresh one.
    """
    own = (
        X25519PrivateKey.generate()
        if ephemeral is None
        else X25519PrivateKey.from_private_bytes(ephemeral)
    )
    enc = _public(own)
    key, nonce = _key_and_nonce(
        own.exchange(X25519PublicKey.from_public_bytes(recipient)), label, enc, recipient
    )
    return {"enc": b64url(enc), "ct": b64url(AESGCM(key).encrypt(nonce, plaintext, aad))}


def open_sealed(sealed: Any, private: bytes, label: bytes, aad: bytes, field: str) -> bytes:
    """The plaintext of a ``{"enc", "ct"}`` sealed to the X25519 key ``private``.

    :class:`InvalidInput` naming ``field`` when it is malformed or does not open (another
    recipient, other associated data, altered bytes).
    """
    if not isinstance(sealed, dict) or set(sealed) != {"enc", "ct"}:
        raise InvalidInput(
            f'{field}: must be {{"enc": ..., "ct": ...}}, sealed as docs/protocol.md § 14.6 says',
            field=field,
        )
    enc = unb64url(sealed["enc"], f"{field}.enc", KEY_BYTES)
    ct = unb64url(sealed["ct"], f"{field}.ct")
    own, public = _recipient(private)
    try:
        key, nonce = _key_and_nonce(
            own.exchange(X25519PublicKey.from_public_bytes(enc)), label, enc, public
        )
        return AESGCM(key).decrypt(nonce, ct, aad)
    except (InvalidTag, ValueError):
        raise InvalidInput(
            f"{field}: does not open: seal it to the foundation's current key "
            "(`foundation` in the key file) with the associated data principal|command_id|kind",
            field=field,
        ) from None


def payload_aad(principal: str, command_id: str, kind: str) -> bytes:
    """The associated data of a sealed payload: ``principal|command_id|kind``."""
    return f"{principal}|{command_id}|{kind}".encode()


def reply_aad(principal: str, command_id: str, in_reply_to: str) -> bytes:
    """The associated data of a sealed reply body: ``principal|command_id|in_reply_to``."""
    return f"{principal}|{command_id}|{in_reply_to}".encode()


def seal_payload(
    opened: dict[str, Any],
    principal: str,
    command_id: str,
    kind: str,
    foundation: FoundationPublic,
    *,
    ephemeral: bytes | None = None,
) -> dict[str, Any]:
    """``{"sealed": {"enc", "ct"}}``: the whole payload sealed to the foundation."""
    return {
        SEALED_MARK: seal(
            canonical(opened),
            foundation.seal_public,
            PAYLOAD_LABEL,
            payload_aad(principal, command_id, kind),
            ephemeral=ephemeral,
        )
    }


def open_payload(
    payload: Any, principal: str, command_id: str, kind: str, foundation: FoundationKey
) -> dict[str, Any]:
    """The opened payload object; :class:`InvalidInput` (field ``payload``) if it is not
    sealed, does not open, or is not a JSON object."""
    if not isinstance(payload, dict) or set(payload) != {SEALED_MARK}:
        raise InvalidInput(
            'payload: must be {"sealed": {"enc": ..., "ct": ...}}: in version 2 the whole '
            "payload is sealed to the foundation, nothing of it in clear",
            field="payload",
        )
    plaintext = open_sealed(
        payload[SEALED_MARK],
        foundation.seal_private,
        PAYLOAD_LABEL,
        payload_aad(principal, command_id, kind),
        "payload.sealed",
    )
    try:
        opened = json.loads(plaintext)
    except ValueError:
        opened = None
    if not isinstance(opened, dict):
        raise InvalidInput("payload: the sealed payload is not a JSON object", field="payload")
    return opened


def seal_reply(
    reply: dict[str, Any],
    principal: str,
    in_reply_to: str,
    client_seal_public: bytes,
    foundation: FoundationKey,
    *,
    ephemeral: bytes | None = None,
) -> dict[str, Any]:
    """The wire form of a reply to a version 2 command, sealed for its client and signed.

    ``reply`` is the foundation's ``{"command_id", "ok", "result"|"error"}``; ``principal``
    the principal of the key that signed the command, ``in_reply_to`` its signature.
    """
    command_id = str(reply["command_id"])
    inner: dict[str, Any] = (
        {"ok": True, "result": reply["result"]}
        if reply["ok"]
        else {"ok": False, "error": reply["error"]}
    )
    wire: dict[str, Any] = {
        "v": VERSION,
        "command_id": command_id,
        "principal": principal,
        "in_reply_to": in_reply_to,
        "key_id": foundation.key_id,
        "body": seal(
            canonical(inner),
            client_seal_public,
            REPLY_LABEL,
            reply_aad(principal, command_id, in_reply_to),
            ephemeral=ephemeral,
        ),
    }
    wire["signature"] = sign(wire, foundation.sign_private)
    return wire


def open_reply(
    wire: dict[str, Any], key: OrganisationKey, command_id: str, request_signature: str
) -> dict[str, Any] | None:
    """The reply ``{"command_id", "ok", "result"|"error"}`` if ``wire`` answers the send
    signed ``request_signature``; ``None`` for anything else (a forgery, another send's
    or another organisation's reply, an old format): the caller keeps waiting."""
    if (
        wire.get("v") != VERSION
        or wire.get("command_id") != command_id
        or wire.get("principal") != key.principal
        or wire.get("key_id") != key.foundation.key_id
        or not isinstance(wire.get("in_reply_to"), str)
        or not hmac.compare_digest(str(wire["in_reply_to"]), request_signature)
        or not verifies(wire, key.foundation.sign_public)
    ):
        return None
    try:
        inner = json.loads(
            open_sealed(
                wire.get("body"),
                key.seal_private,
                REPLY_LABEL,
                reply_aad(key.principal, command_id, request_signature),
                "body",
            )
        )
    except (InvalidInput, ValueError):
        return None
    if not isinstance(inner, dict) or not isinstance(inner.get("ok"), bool):
        return None
    return {"command_id": command_id, **inner}
