"""Signing secrets at rest: wrapped under a key file outside the store.

A copy of the store alone (a backup, a file another user read) holds no secret that can
sign as an organisation. Each ``signing_keys.secret`` of protocol version 1 is stored as
``w1:`` + base64url(nonce ‖ AES-256-GCM(secret)), with ``principal`` and ``key_id`` as
associated data (a wrapped secret moved to another key's row does not open), under the 32
bytes of a key file: mode 0600, beside the SQLite file by default
(``JOBORDRE_STORE_SECRETS_KEY_FILE`` puts it elsewhere). Every host of one PostgreSQL store
needs the same file; PostgreSQL keeps secrets unwrapped only when no key file is set.

The key file is made by the first process that wraps a secret, atomically (a link that
fails if another process made it first), and never replaced. A secret without the prefix
was written before wrapping: it reads as it is, and :func:`wrap_stored` wraps it when the
store opens with a key file. A wrapped secret with no key file, or the wrong one, is
:class:`Unavailable` with what to do: it never verifies as a wrong signature.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import Unavailable
from shared.store.interface import Store, Tx
from shared.store.private_files import FILE_MODE, private_folder

#: Prefix of a wrapped secret in ``signing_keys.secret``.
PREFIX = "w1:"
#: The :attr:`Tx.memo` entry holding the store's :class:`SecretsKey`.
MEMO = "secrets_at_rest"
#: Bytes of the wrapping key (AES-256).
KEY_BYTES = 32
#: Bytes of an AES-GCM nonce.
NONCE_BYTES = 12


class SecretsKey:
    """The key file of one store, read once; ``path`` None keeps secrets unwrapped."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self, *, create: bool) -> bytes | None:
        """The wrapping key; made (once, by one process) if ``create`` and missing."""
        if self._key is not None or self.path is None:
            return self._key
        with self._lock:
            if self._key is None:
                self._key = _read(self.path) or (_make(self.path) if create else None)
        return self._key

    def wrap(self, principal: str, key_id: str, secret: str) -> str:
        """What the store keeps for ``secret``."""
        key = self.key(create=True)
        if key is None:
            return secret
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, secret.encode(), _aad(principal, key_id))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def unwrap(self, principal: str, key_id: str, stored: str) -> str:
        """The secret the store keeps as ``stored``."""
        if not stored.startswith(PREFIX):
            return stored
        key = self.key(create=False)
        if key is None:
            raise Unavailable(
                f"the signing secrets in this store are wrapped under a key file this process "
                f"does not have ({self.path or 'none set'}): set JOBORDRE_STORE_SECRETS_KEY_FILE "
                "to the store's key file (the same on every host), or restore it from backup"
            )
        raw = base64.urlsafe_b64decode(stored[len(PREFIX) :])
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, _aad(principal, key_id))
        except InvalidTag:
            raise Unavailable(
                f"signing key {key_id} of {principal} does not open with {self.path}: the key "
                "file belongs to another store; set JOBORDRE_STORE_SECRETS_KEY_FILE to this "
                "store's key file"
            ) from None
        return plain.decode()


def of(conn: Tx) -> SecretsKey:
    """The store's key file (none known: secrets stay unwrapped, as a bare store keeps them)."""
    known: SecretsKey | None = conn.memo.get(MEMO)
    return known if known is not None else SecretsKey(None)


def of_store(store: Store) -> SecretsKey:
    """:func:`of` for a store rather than one of its transactions."""
    known: SecretsKey | None = store.memo.get(MEMO)
    return known if known is not None else SecretsKey(None)


def wrap_in(store: Store) -> int:
    """Wrap every secret ``store`` still keeps unwrapped (none: no write); how many."""
    if of_store(store).path is None:
        return 0
    with store.read() as conn:
        if not _unwrapped(conn):
            return 0
    with store.write() as conn:
        return wrap_stored(conn)


def wrap_stored(conn: Tx) -> int:
    """Wrap every secret still kept unwrapped (inside a write transaction); how many."""
    wrapping = of(conn)
    if wrapping.path is None:
        return 0
    rows = _unwrapped(conn)
    conn.executemany(
        "UPDATE signing_keys SET secret = ? WHERE key_id = ? AND secret = ?",
        [(wrapping.wrap(r[1], r[0], r[2]), r[0], r[2]) for r in rows],
    )
    return len(rows)


def _unwrapped(conn: Tx) -> list[Any]:
    return list(
        conn.execute(
            "SELECT key_id, principal, secret FROM signing_keys WHERE secret NOT LIKE ?",
            (PREFIX + "%",),
        ).fetchall()
    )


def _aad(principal: str, key_id: str) -> bytes:
    return f"jobordre signing secret\n{principal}\n{key_id}".encode()


def _read(path: Path) -> bytes | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    key = bytes.fromhex(text) if len(text) == 2 * KEY_BYTES else b""
    if len(key) != KEY_BYTES:
        raise Unavailable(f"{path}: not a store key file (64 hex digits); restore it from backup")
    return key


def _make(path: Path) -> bytes:
    """Write a new key file; if another process made one first, that one is the key."""
    private_folder(path.parent)
    key = secrets.token_bytes(KEY_BYTES)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    made = _read(path)
    assert made is not None
    return made
