"""Protocol 2's keys and signatures: Ed25519 (RFC 8032) to sign, X25519 (RFC 7748) to seal.

An organisation makes its key pair where it runs and keeps the private half in its key
file (:class:`OrganisationKey`); the foundation's store keeps only the public halves
(:class:`PublicKeys`), so nobody who holds the store can sign as an organisation, and a
signed command proves to a third party who sent it. The foundation's own key pair
(:class:`FoundationKey`) signs replies and opens payloads; it lives in a key file outside
the store (``JOBORDRE_FOUNDATION_KEY_FILE``), and every organisation's key file carries
its public half (:class:`FoundationPublic`).

A signature is Ed25519 over :func:`shared.canonical_v2.signed_bytes` of the document
(every member but ``signature``), written base64url. ``docs/protocol.md`` section 14
states the byte-exact formats.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.canonical_v2 import b64url, signed_bytes, unb64url
from shared.errors import InvalidInput

#: The key-file and envelope format version these keys belong to.
VERSION = 2
#: Bytes of every protocol 2 key (Ed25519 seed and public key, X25519 private and public).
KEY_BYTES = 32
#: Characters of an Ed25519 signature in base64url without padding (64 bytes).
SIGNATURE_CHARS = 86
#: What a key id may hold: it names a key in logs, files and Redis-free lookups.
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Distinct public keys kept parsed per process: a worker verifies a few hundred.
PARSED_KEY_ENTRIES = 4096


def _raw_public(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@functools.lru_cache(maxsize=PARSED_KEY_ENTRIES)
def _signer(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


@functools.lru_cache(maxsize=PARSED_KEY_ENTRIES)
def _verifier(public: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public)


def sign(document: dict[str, Any], seed: bytes) -> str:
    """The base64url Ed25519 signature of ``document``'s signed bytes under ``seed``."""
    return b64url(_signer(seed).sign(signed_bytes(document)))


def verifies(document: dict[str, Any], public: bytes) -> bool:
    """Whether ``document["signature"]`` is ``public``'s Ed25519 signature of its signed
    bytes; False for anything malformed (no signature, not base64url, wrong length)."""
    given = document.get("signature")
    if not isinstance(given, str) or len(given) != SIGNATURE_CHARS:
        return False
    try:
        raw = unb64url(given, "signature", 64)
        _verifier(public).verify(raw, signed_bytes(document))
    except (InvalidInput, InvalidSignature, ValueError):
        return False
    return True


def _key_bytes(data: dict[str, Any], name: str, where: str) -> bytes:
    return unb64url(data.get(name), f"{where}.{name}", KEY_BYTES)


def _key_id(data: dict[str, Any], where: str) -> str:
    key_id = data.get("key_id")
    if not isinstance(key_id, str) or not KEY_ID.fullmatch(key_id):
        raise InvalidInput(f"{where}.key_id: must match {KEY_ID.pattern}", field="key_id")
    return key_id


@dataclass(frozen=True, slots=True)
class FoundationPublic:
    """The foundation's public keys: payloads are sealed to ``seal_public``, replies are
    verified with ``sign_public``."""

    key_id: str
    sign_public: bytes
    seal_public: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "sign_public": b64url(self.sign_public),
            "seal_public": b64url(self.seal_public),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "foundation") -> FoundationPublic:
        if not isinstance(data, dict):
            raise InvalidInput(f"{where}: must be an object", field=where)
        return cls(
            _key_id(data, where),
            _key_bytes(data, "sign_public", where),
            _key_bytes(data, "seal_public", where),
        )


@dataclass(frozen=True, slots=True)
class FoundationKey:
    """The foundation's key pair (private): signs replies, opens sealed payloads."""

    key_id: str
    sign_private: bytes
    seal_private: bytes

    @classmethod
    def generate(cls) -> FoundationKey:
        return cls(f"f2-{secrets.token_hex(6)}", secrets.token_bytes(32), secrets.token_bytes(32))

    @property
    def public(self) -> FoundationPublic:
        return FoundationPublic(
            self.key_id,
            _raw_public(_signer(self.sign_private)),
            _raw_public(X25519PrivateKey.from_private_bytes(self.seal_private)),
        )

    def to_json(self) -> str:
        """The foundation's key file."""
        return json.dumps(
            {
                "v": VERSION,
                "role": "foundation",
                **self.public.to_dict(),
                "sign_private": b64url(self.sign_private),
                "seal_private": b64url(self.seal_private),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FoundationKey:
        data = _object(text, "foundation key file")
        key = cls(
            _key_id(data, "foundation"),
            _key_bytes(data, "sign_private", "foundation"),
            _key_bytes(data, "seal_private", "foundation"),
        )
        if FoundationPublic.from_dict(data) != key.public:
            raise InvalidInput(
                "foundation key file: its public keys are not those of its private keys",
                field="key_file",
            )
        return key


@dataclass(frozen=True, slots=True)
class PublicKeys:
    """What the foundation's store keeps of an organisation's protocol 2 key: public only."""

    principal: str
    key_id: str
    sign_public: bytes
    seal_public: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "key_id": self.key_id,
            "sign_public": b64url(self.sign_public),
            "seal_public": b64url(self.seal_public),
        }


@dataclass(frozen=True, slots=True)
class OrganisationKey:
    """An organisation's protocol 2 key file: its private keys and the foundation's public."""

    principal: str
    key_id: str
    sign_private: bytes
    seal_private: bytes
    foundation: FoundationPublic

    @classmethod
    def generate(cls, principal: str, foundation: FoundationPublic) -> OrganisationKey:
        return cls(
            principal,
            f"k2-{secrets.token_hex(6)}",
            secrets.token_bytes(32),
            secrets.token_bytes(32),
            foundation,
        )

    @property
    def public(self) -> PublicKeys:
        return PublicKeys(
            self.principal,
            self.key_id,
            _raw_public(_signer(self.sign_private)),
            _raw_public(X25519PrivateKey.from_private_bytes(self.seal_private)),
        )

    def to_json(self) -> str:
        """The key file's content (private: mode 0600, never in the store)."""
        public = self.public
        return json.dumps(
            {
                "v": VERSION,
                "principal": self.principal,
                "key_id": self.key_id,
                "sign_private": b64url(self.sign_private),
                "seal_private": b64url(self.seal_private),
                "sign_public": b64url(public.sign_public),
                "seal_public": b64url(public.seal_public),
                "foundation": self.foundation.to_dict(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> OrganisationKey:
        data = _object(text, "key file")
        principal = data.get("principal")
        if not isinstance(principal, str):
            raise InvalidInput("key file.principal: must be a string", field="principal")
        key = cls(
            principal,
            _key_id(data, "key file"),
            _key_bytes(data, "sign_private", "key file"),
            _key_bytes(data, "seal_private", "key file"),
            FoundationPublic.from_dict(data.get("foundation"), "key file.foundation"),
        )
        public = key.public
        given = (
            _key_bytes(data, "sign_public", "key file"),
            _key_bytes(data, "seal_public", "key file"),
        )
        if given != (public.sign_public, public.seal_public):
            raise InvalidInput(
                "key file: its public keys are not those of its private keys",
                field="key_file",
            )
        return key


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidInput(f"{what}: not JSON", field="key_file") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise InvalidInput(f"{what}: not a version {VERSION} key file", field="key_file")
    return data


def is_v2_key_file(text: str) -> bool:
    """Whether a key file's text is a protocol 2 key file (``"v": 2``)."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("v") == VERSION
