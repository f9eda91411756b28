"""Where a client's signing key comes from.

A client signs with its organisation's key file: ``JOBORDRE_KEY_FILE``, or
``<key_dir>/<kind>_<id>.key``. The foundation's operator makes one with ``jobordre keys
create ORG`` and hands it to the organisation. A client on the foundation's own host that
can write the store (the embedded default, a worker, the benchmark) makes its own on first
use: whoever can write the store is trusted with everything already, so nothing is given
away, and a new user of ``jobordre up`` notices nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shared import keys
from shared.clock import utc_now
from shared.errors import Forbidden, InvalidInput
from shared.settings import Settings
from shared.signing import SigningKey
from shared.signing_v2 import FoundationKey, OrganisationKey, is_v2_key_file
from shared.store import SqliteStore, Store, open_store
from shared.store.file_lock import ProcessLock


def key_path(settings: Settings, principal: str) -> Path:
    """The key file of ``principal``."""
    if settings.key_file is not None:
        return settings.key_file
    return settings.keys_path / f"{principal.replace(':', '_')}.key"


def write_key(path: Path, key: SigningKey | OrganisationKey | FoundationKey) -> None:
    """Write a key file readable by its owner only, whole or not at all.

    The temporary file's name is this writer's own (mkstemp, mode 0600): writers of the
    same key file in several processes must not rename each other's half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(key.to_json())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def provision(store: Store, settings: Settings, principal: str) -> SigningKey | OrganisationKey:
    """Create a new key for ``principal`` in the store and write its key file.

    Clients starting at once (four ``jobordre expire`` runs, say) provision one after the
    other under a file lock, and each looks for the key file again first: the first makes
    the key, the others use it instead of each adding a key of their own.
    """
    path = settings.keys_path / f"{principal.replace(':', '_')}.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = ProcessLock(path.with_name(path.name + ".lock"))
    try:
        with lock.held():
            if path.exists():
                return read_key_file(path)
            with store.write() as conn:
                key = keys.create(conn, principal, utc_now())
            write_key(path, key)
            return key
    finally:
        lock.close()


#: Largest key file read, in bytes (a key file is about 120).
MAX_KEY_FILE_BYTES = 4096


def read_key_file(path: Path) -> SigningKey | OrganisationKey:
    """A key file's key (protocol 1, or 2 for a file with ``"v": 2``); :class:`InvalidInput`
    naming the file if it is not one."""
    problem = f"the key file {path} is not a jobordre key file"
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
        if len(data) > MAX_KEY_FILE_BYTES:
            raise InvalidInput(
                f"{problem} (larger than {MAX_KEY_FILE_BYTES} bytes)", field="key_file"
            )
        text = data.decode("utf-8")
        if is_v2_key_file(text):
            return OrganisationKey.from_json(text)
        key = SigningKey.from_json(text)
    except OSError as error:
        raise InvalidInput(
            f"cannot read the key file {path}: {error.strerror}", field="key_file"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise InvalidInput(
            f"{problem}; ask the operator for a new one (`jobordre keys create`)", field="key_file"
        ) from None
    if not key.key_id or not key.secret or len(key.secret) < 16:
        raise InvalidInput(f"{problem} (no key id or secret)", field="key_file")
    return key


def signing_key(settings: Settings, principal: str) -> SigningKey | OrganisationKey:
    """The key a client of ``principal`` signs with; see the module docstring."""
    path = key_path(settings, principal)
    if path.exists():
        key = read_key_file(path)
        if key.principal != principal:
            raise Forbidden(f"the key file {path} belongs to {key.principal}, not {principal}")
        return key
    if settings.database_url:
        # Whoever holds the database URL is the operator already: provision there.
        store: Store = open_store(settings)
        try:
            return provision(store, settings, principal)
        finally:
            store.close()
    db = settings.db_path
    if db.exists() and os.access(db, os.W_OK) and os.access(db.parent, os.W_OK):
        store = SqliteStore(db, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        try:
            return provision(store, settings, principal)
        finally:
            store.close()
    raise Forbidden(
        f"no signing key for {principal} at {path}: ask the foundation's operator for one "
        f"(`jobordre keys create {principal}`) and save it there, or set JOBORDRE_KEY_FILE"
    )


def system_key(store: Store) -> SigningKey:
    """The foundation's own key (for scheduled work), created on first use."""
    with store.write() as conn:
        valid = keys.valid_keys(conn, "system")
        return next(iter(valid.values())) if valid else keys.create(conn, "system", utc_now())


def foundation_key(settings: Settings) -> FoundationKey:
    """The foundation's protocol 2 key pair, from its key file; made on first use.

    Processes starting at once (several workers) make it one after the other under a file
    lock, and each looks for the file again first, so there is one key pair.
    """
    path = settings.foundation_key_path
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = ProcessLock(path.with_name(path.name + ".lock"))
    try:
        with lock.held():
            if not path.exists():
                write_key(path, FoundationKey.generate())
            try:
                return FoundationKey.from_json(path.read_text("utf-8"))
            except OSError as error:
                raise InvalidInput(
                    f"cannot read the foundation key file {path}: {error.strerror}",
                    field="foundation_key_file",
                ) from None
    finally:
        lock.close()


def create_v2_key(store: Store, settings: Settings, principal: str) -> OrganisationKey:
    """A new protocol 2 key pair for ``principal``: only its public keys go to the store.

    The caller writes the returned private key file where the organisation runs.
    """
    key = OrganisationKey.generate(principal, foundation_key(settings).public)
    with store.write() as conn:
        keys.register_public(conn, key.public, utc_now())
    return key
