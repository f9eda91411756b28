"""Protocol 2's canonical bytes (RFC 8785) and its binary encoding (base64url, no padding).

The canonical form is the JSON Canonicalization Scheme of RFC 8785, made by the maintained
``rfc8785`` library, never by hand: keys sorted by UTF-16 code units, no whitespace,
strings with only the mandatory escapes (non-ASCII as itself, in UTF-8), numbers as
ECMAScript writes them. Any other implementation of the RFC (npm ``canonicalize``, the
Java client's) gives the same bytes for the same JSON value, which is the point.

Every binary value of protocol 2 (keys, signatures, ``enc``, ``ct``) is base64url without
padding (RFC 4648 section 5); a value with padding, ``+``, ``/`` or whitespace is refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import rfc8785

from shared.errors import InvalidInput

#: A base64url value without padding: what :func:`b64url` writes and :func:`unb64url` reads.
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes of a JSON value; :class:`InvalidInput` for what JSON cannot hold."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as error:
        raise InvalidInput(
            f"envelope: no RFC 8785 form ({error}); send JSON strings, integers, "
            "booleans, null, arrays and objects only",
            field="envelope",
        ) from None


def signed_bytes(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the RFC 8785 form of every member but ``signature``."""
    return canonical({name: value for name, value in document.items() if name != "signature"})


def b64url(data: bytes) -> str:
    """``data`` in base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: Any, field: str, length: int | None = None) -> bytes:
    """The bytes of a base64url value without padding; :class:`InvalidInput` naming
    ``field`` if it is not one (or not ``length`` bytes long)."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise InvalidInput(
            f"{field}: must be base64url without padding (A-Z a-z 0-9 - _, no '=')",
            field=field,
        )
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{field}: is not base64url", field=field) from None
    if length is not None and len(data) != length:
        raise InvalidInput(f"{field}: must hold {length} bytes, not {len(data)}", field=field)
    return data
