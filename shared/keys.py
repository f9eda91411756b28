"""The organisations' signing keys in the store: create, rotate, revoke, look up.

A worker checks a signature on every command; it reads an organisation's valid keys
through a :class:`KeyCache` kept per store (in :attr:`Tx.memo`), trusted for at most
:data:`KEY_CACHE_MS`. A key created or revoked through the same store object drops the
organisation's entry at once; a key revoked by another process (``jobordre keys revoke``,
another worker or host) is refused at most :data:`KEY_CACHE_MS` after its revocation
committed. A key the cache does not know is looked up in the store before a command
signed with it is refused, so a new key works at once.

A key may be **scoped** (:data:`SCOPES`): ``notify`` is bound to one caseworker and may
send only that caseworker's ``following`` and ``unfollow`` and the organisation's ``inbox``
with ``headers_only``, what the desktop notifier needs and nothing that reads a person or
changes an order or a placement. :func:`check_scope` is what the foundation calls on
every command before its operation runs; anything more sent with a scoped key is
``forbidden``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from shared.canonical_v2 import b64url, unb64url
from shared.commands import CommandKind, Follow, Following, Inbox
from shared.envelope import SCHEMA_VERSION_2, Envelope, decode_envelope, new_envelope
from shared.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from shared.sealing import open_payload
from shared.signing import SigningKey, verify
from shared.signing_v2 import KEY_BYTES, PublicKeys, verifies
from shared.store import secrets_at_rest
from shared.store.interface import Tx

#: How long a cached set of an organisation's valid keys is trusted, in milliseconds: the
#: longest a key revoked by another process stays usable against a worker. Short enough
#: that a command sent after `jobordre keys revoke` returned (a CLI start alone takes
#: longer) is refused; long enough that a busy organisation's keys are read a few times a
#: second instead of once per command.
KEY_CACHE_MS = 250
#: The :attr:`Tx.memo` entry holding a store's :class:`KeyCache`.
CACHE_MEMO = "signing_key_cache"
#: The :attr:`Tx.memo` entry holding a store's :class:`PublicKeyCache` (protocol 2).
PUBLIC_CACHE_MEMO = "public_key_cache"


def monotonic_ms() -> float:
    """A clock for cache ages, in milliseconds (never goes back)."""
    return time.monotonic() * 1000


class KeyCache:
    """The valid keys of each organisation as last read, each entry trusted for
    ``max_age_ms``; thread-safe (the threads of a worker share one)."""

    def __init__(
        self, max_age_ms: int = KEY_CACHE_MS, clock_ms: Callable[[], float] = monotonic_ms
    ) -> None:
        self.max_age_ms = max_age_ms
        self.clock_ms = clock_ms
        self._entries: dict[str, tuple[float, dict[str, SigningKey]]] = {}
        self._lock = threading.Lock()
        #: When each organisation's keys were last changed through this store. For
        #: ``max_age_ms`` after, what is read is not cached: the change may not have
        #: committed yet, and a read that began before it may hold the keys as they were.
        self._changed_at: dict[str, float] = {}

    def valid_keys(
        self, conn: Tx, principal: str, key_id: str | None = None
    ) -> dict[str, SigningKey]:
        """The valid keys of ``principal``, from the cache while it is fresh and knows
        ``key_id`` (the key a command names); from the store otherwise."""
        entry = self._entries.get(principal)
        if (
            entry is not None
            and self.clock_ms() - entry[0] < self.max_age_ms
            and (key_id is None or key_id in entry[1])
        ):
            return entry[1]
        read_at = self.clock_ms()
        found = valid_keys(conn, principal)
        with self._lock:
            changed_at = self._changed_at.get(principal)
            if changed_at is None or read_at - changed_at >= self.max_age_ms:
                self._entries[principal] = (read_at, found)
        return found

    def invalidate(self, principal: str) -> None:
        """Forget ``principal``'s keys: they are being changed through this store."""
        with self._lock:
            self._changed_at[principal] = self.clock_ms()
            self._entries.pop(principal, None)


def use_cache(conn: Tx, cache: KeyCache) -> KeyCache:
    """Make ``cache`` the key cache of ``conn``'s store (tests give it their own clock)."""
    conn.memo[CACHE_MEMO] = cache
    return cache


def cached_valid_keys(conn: Tx, principal: str, key_id: str | None) -> dict[str, SigningKey]:
    """:func:`valid_keys` through the store's :class:`KeyCache` (made on first use); for
    checking signatures, where a revocation may take :data:`KEY_CACHE_MS` to be seen."""
    cache = conn.memo.get(CACHE_MEMO)
    if cache is None:
        cache = conn.memo.setdefault(CACHE_MEMO, KeyCache())
    keys: dict[str, SigningKey] = cache.valid_keys(conn, principal, key_id)
    return keys


def _changed(conn: Tx, principal: str) -> None:
    """The keys of ``principal`` change in ``conn``: the store's cache forgets them, and
    reads them from the store for :data:`KEY_CACHE_MS` (the change commits after this)."""
    cache = conn.memo.get(CACHE_MEMO)
    if cache is not None:
        cache.invalidate(principal)


#: The scope of the desktop notifier's key.
NOTIFY = "notify"
#: Each scope, and the command kinds a key of that scope may send.
SCOPES: dict[str, frozenset[CommandKind]] = {
    NOTIFY: frozenset({CommandKind.FOLLOWING, CommandKind.INBOX, CommandKind.UNFOLLOW}),
}


def create(
    conn: Tx,
    principal: str,
    at: datetime,
    *,
    scope: str | None = None,
    caseworker: str | None = None,
) -> SigningKey:
    """A new valid key for ``principal``; keys it had stay valid (that is a rotation).

    With ``scope``, the key may do only what :data:`SCOPES` allows, for ``caseworker``
    alone (required with a scope, refused without one).
    """
    _check_new_scope(principal, scope, caseworker)
    fresh = SigningKey.generate(principal)
    key = SigningKey(fresh.principal, fresh.key_id, fresh.secret, scope, caseworker)
    conn.execute(
        "INSERT INTO signing_keys (key_id, principal, secret, created_at, scope, caseworker)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            key.key_id,
            key.principal,
            secrets_at_rest.of(conn).wrap(key.principal, key.key_id, key.secret),
            at.isoformat(),
            scope,
            caseworker,
        ),
    )
    _changed(conn, principal)
    return key


def _check_new_scope(principal: str, scope: str | None, caseworker: str | None) -> None:
    if scope is None:
        if caseworker is not None:
            raise InvalidInput(
                "caseworker: a key is bound to a caseworker only with a scope (--scope notify)",
                field="caseworker",
            )
        return
    if scope not in SCOPES:
        raise InvalidInput(
            f"scope: {scope!r} is not a scope; the scopes are {', '.join(sorted(SCOPES))}",
            field="scope",
        )
    if principal == "system":
        raise InvalidInput("scope: the foundation's own key is never scoped", field="scope")
    if caseworker is None:
        raise InvalidInput(
            f"caseworker: a key of scope {scope} is bound to one caseworker; name it",
            field="caseworker",
        )
    try:
        Following(caseworker=caseworker)
    except ValueError:
        raise InvalidInput(
            "caseworker: 1–64 letters, digits or . _ @ -", field="caseworker"
        ) from None


def check_scope(key: SigningKey | PublicKeys, envelope: Envelope, payload: BaseModel) -> None:
    """Refuse, as :class:`Forbidden`, a command its key's scope does not allow.

    An unscoped key may send anything (its organisation's rights are checked by the
    operation). A ``notify`` key sends only ``following`` and ``unfollow`` of its own
    caseworker (the desktop's menu stops following an order: that changes what this
    caseworker is told, nothing of an order or a person) and ``inbox`` with
    ``headers_only``, each naming its caseworker in the envelope.
    """
    if not isinstance(key, SigningKey) or key.scope is None:
        return  # protocol 2 keys have no scope (yet): they may send anything
    allowed = SCOPES.get(key.scope, frozenset())
    refused = f"key {key.key_id} of {key.principal} has scope {key.scope}"
    if envelope.kind not in allowed:
        raise Forbidden(
            f"{refused}: it may send only {', '.join(sorted(allowed))}, not {envelope.kind}; "
            "use the organisation's own key"
        )
    if envelope.caseworker != key.caseworker or (
        isinstance(payload, Following | Follow) and payload.caseworker != key.caseworker
    ):
        raise Forbidden(f"{refused}: it is bound to another caseworker")
    if isinstance(payload, Inbox) and not payload.headers_only:
        raise Forbidden(f"{refused}: it may read the inbox's headers only (headers_only)")


_REVOKE_V1 = (
    "UPDATE signing_keys SET revoked_at = ? WHERE key_id = ? AND principal = ?"
    " AND revoked_at IS NULL"
)
_REVOKE_V2 = (
    "UPDATE public_keys SET revoked_at = ? WHERE key_id = ? AND principal = ?"
    " AND revoked_at IS NULL"
)
#: Both protocols' keys, oldest columns first; protocol 2 rows carry their public keys.
_LISTING = (
    "SELECT * FROM (SELECT key_id, principal, created_at, revoked_at, 1 AS protocol,"
    " NULL AS sign_public, NULL AS seal_public, scope, caseworker FROM signing_keys"
    " UNION ALL SELECT key_id, principal, created_at, revoked_at, 2, sign_public,"
    " seal_public, NULL, NULL FROM public_keys) AS k"
)


def revoke(conn: Tx, principal: str, key_id: str, at: datetime) -> None:
    """Make one key of ``principal`` (of either protocol) invalid from now on."""
    revoked = 0
    for update in (_REVOKE_V1, _REVOKE_V2):
        revoked += conn.execute(update, (at.isoformat(), key_id, principal)).rowcount
    if revoked != 1:
        raise NotFound(f"{principal} has no valid key {key_id}; see `jobordre keys list`")
    _changed(conn, principal)
    cache = conn.memo.get(PUBLIC_CACHE_MEMO)
    if cache is not None:
        cache.invalidate(key_id)


def register_public(conn: Tx, key: PublicKeys, at: datetime) -> None:
    """Register an organisation's protocol 2 public keys (its private keys stay with it)."""
    conn.execute(
        "INSERT INTO public_keys (key_id, principal, sign_public, seal_public, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            key.key_id,
            key.principal,
            b64url(key.sign_public),
            b64url(key.seal_public),
            at.isoformat(),
        ),
    )
    _changed(conn, key.principal)


def public_key(conn: Tx, key_id: str, *, revoked: bool = False) -> PublicKeys | None:
    """The protocol 2 public keys named ``key_id``; a revoked key only if ``revoked``."""
    row = conn.execute(
        "SELECT principal, sign_public, seal_public, revoked_at FROM public_keys WHERE key_id = ?",
        (key_id,),
    ).fetchone()
    if row is None or (row[3] is not None and not revoked):
        return None
    return PublicKeys(
        str(row[0]),
        key_id,
        unb64url(row[1], "sign_public", KEY_BYTES),
        unb64url(row[2], "seal_public", KEY_BYTES),
    )


class PublicKeyCache:
    """Valid protocol 2 public keys by key id, each trusted for ``max_age_ms`` (as
    :class:`KeyCache`); an unknown key is looked up in the store every time."""

    def __init__(
        self, max_age_ms: int = KEY_CACHE_MS, clock_ms: Callable[[], float] = monotonic_ms
    ) -> None:
        self.max_age_ms = max_age_ms
        self.clock_ms = clock_ms
        self._entries: dict[str, tuple[float, PublicKeys]] = {}
        self._lock = threading.Lock()
        self._changed_at: dict[str, float] = {}

    def get(self, conn: Tx, key_id: str) -> PublicKeys | None:
        entry = self._entries.get(key_id)
        if entry is not None and self.clock_ms() - entry[0] < self.max_age_ms:
            return entry[1]
        read_at = self.clock_ms()
        found = public_key(conn, key_id)
        with self._lock:
            changed_at = self._changed_at.get(key_id)
            if found is not None and (
                changed_at is None or read_at - changed_at >= self.max_age_ms
            ):
                self._entries[key_id] = (read_at, found)
        return found

    def invalidate(self, key_id: str) -> None:
        with self._lock:
            self._changed_at[key_id] = self.clock_ms()
            self._entries.pop(key_id, None)


def signer_v2(conn: Tx, document: dict[str, Any], *, revoked: bool = False) -> PublicKeys | None:
    """The protocol 2 key whose signature ``document`` carries, if it verifies.

    Only a valid key (through the cache) unless ``revoked``: then only a revoked one, read
    from the store (its holder is told it was refused, as in protocol 1).
    """
    key_id = document.get("key_id")
    if not isinstance(key_id, str):
        return None
    if revoked:
        key = public_key(conn, key_id, revoked=True)
        if key is None or public_key(conn, key_id) is not None:
            return None
    else:
        key = cached_public_key(conn, key_id)
    try:
        return key if key is not None and verifies(document, key.sign_public) else None
    except InvalidInput:
        # No RFC 8785 form (a float beyond its range, an integer beyond 2**53): no
        # signature can cover it.
        return None


def cached_public_key(conn: Tx, key_id: str) -> PublicKeys | None:
    """:func:`public_key` (valid keys only) through the store's :class:`PublicKeyCache`."""
    cache = conn.memo.get(PUBLIC_CACHE_MEMO)
    if cache is None:
        cache = conn.memo.setdefault(PUBLIC_CACHE_MEMO, PublicKeyCache())
    found: PublicKeys | None = cache.get(conn, key_id)
    return found


def valid_keys(conn: Tx, principal: str) -> dict[str, SigningKey]:
    """The keys of ``principal`` that are not revoked, by key id."""
    rows = conn.execute(
        "SELECT key_id, principal, secret, scope, caseworker FROM signing_keys"
        " WHERE principal = ? AND revoked_at IS NULL",
        (principal,),
    ).fetchall()
    return _keys(conn, rows)


def _keys(conn: Tx, rows: Sequence[Sequence[str | None]]) -> dict[str, SigningKey]:
    """Keys by key id, from ``(key_id, principal, stored secret, scope, caseworker)`` rows."""
    wrapping = secrets_at_rest.of(conn)
    return {
        str(key_id): SigningKey(
            str(principal),
            str(key_id),
            wrapping.unwrap(str(principal), str(key_id), str(stored)),
            scope,
            caseworker,
        )
        for key_id, principal, stored, scope, caseworker in rows
    }


def listing(conn: Tx, principal: str | None) -> list[dict[str, str | int | None]]:
    """Every key (without a secret; protocol 2 keys with their public keys), newest first;
    of one principal if given."""
    query = _LISTING
    rows = (
        conn.execute(query + " ORDER BY created_at DESC").fetchall()
        if principal is None
        else conn.execute(
            query + " WHERE principal = ? ORDER BY created_at DESC", (principal,)
        ).fetchall()
    )
    listed: list[dict[str, str | int | None]] = []
    for r in rows:
        row: dict[str, str | int | None] = {
            "key_id": r[0],
            "principal": r[1],
            "created_at": r[2],
            "revoked_at": r[3],
            "protocol": int(r[4]),
            "scope": r[7],
            "caseworker": r[8],
        }
        if r[4] == 2:
            row.update(sign_public=r[5], seal_public=r[6])
        listed.append(row)
    return listed


def every_key(conn: Tx, principal: str) -> dict[str, SigningKey]:
    """Every key ``principal`` ever had, revoked ones included, by key id."""
    rows = conn.execute(
        "SELECT key_id, principal, secret, scope, caseworker FROM signing_keys WHERE principal = ?",
        (principal,),
    ).fetchall()
    return _keys(conn, rows)


def revoked_at(conn: Tx, key_id: str) -> datetime | None:
    """When a key was revoked; ``None`` while it is valid."""
    row = conn.execute("SELECT revoked_at FROM signing_keys WHERE key_id = ?", (key_id,)).fetchone()
    return None if row is None or row[0] is None else datetime.fromisoformat(row[0])


def _cannot_retry(envelope_id: str, why: str) -> InvalidInput:
    return InvalidInput(f"command {envelope_id} cannot be retried: {why}; purge it", field="id")


def resign(
    conn: Tx,
    raw: str,
    *,
    source: str,
    code: str,
    died_at: datetime,
    window_ms: int,
    retried_at: datetime,
    max_age_ms: int,
    read_window_ms: int,
) -> str:
    """A kept command, signed afresh for a retry by the foundation's operator.

    A retried write may be older than the signature window, so it is re-signed (same
    command id, same payload, its sealed fields sealed anew) with a valid key of its
    organisation. A retry must never widen trust, so it refuses, saying why:

    - a command refused as ``forbidden`` (not authentic, expired, dated in the future, or
      not allowed): retrying cannot make it so;
    - a command whose signature does not verify under a key its organisation had, or whose
      key has been revoked since (at any time: a revoked key may have been stolen, and its
      work is the organisation's to resend, never the operator's to vouch for);
    - a command that died more than ``window_ms`` after it was sent: it was not a fresh
      command when it arrived (a captured one replayed late);
    - a write older than ``max_age_ms`` at ``retried_at``: the age bound runs to the retry,
      not to the death;
    - a read older than ``read_window_ms`` (the signature window) at ``retried_at``: while
      its claim stands, a read that was answered is refused again; after, it would run anew.
    """
    envelope = decode_envelope(raw)
    if envelope.schema_version == SCHEMA_VERSION_2:
        raise _cannot_retry(
            envelope.command_id,
            "a version 2 command is signed by its organisation alone and the foundation "
            "cannot sign it again; the organisation resends it with the same command id",
        )
    if source == "rejected" and code == "forbidden":
        raise _cannot_retry(
            envelope.command_id,
            "it was refused as not authentic, expired or not allowed, and a retry cannot "
            "change that",
        )
    try:
        key = verify(envelope.model_dump(mode="json"), every_key(conn, envelope.principal))
    except NotAuthenticated:
        raise _cannot_retry(
            envelope.command_id, f"it was not signed by {envelope.principal}"
        ) from None
    if revoked_at(conn, key.key_id) is not None:
        raise _cannot_retry(
            envelope.command_id,
            f"it was signed with key {key.key_id}, which {envelope.principal} has revoked "
            "since; the organisation sends it again if it still wants it",
        )
    if died_at - envelope.sent_at > timedelta(milliseconds=window_ms):
        raise _cannot_retry(
            envelope.command_id,
            f"it arrived more than {window_ms} ms after it was sent (a late replay)",
        )
    bound_ms = max_age_ms if envelope.kind.writes else read_window_ms
    if retried_at - envelope.sent_at > timedelta(milliseconds=bound_ms):
        raise _cannot_retry(
            envelope.command_id,
            f"it was sent more than {bound_ms} ms ago"
            + (
                " (JOBORDRE_DEAD_RETRY_MAX_AGE_MS); the organisation sends it again"
                if envelope.kind.writes
                else " (a read is retried only inside its signature window, "
                "JOBORDRE_SIGNATURE_MAX_AGE_MS)"
            ),
        )
    if key.scope is not None:
        raise _cannot_retry(
            envelope.command_id, f"it was signed with key {key.key_id} of scope {key.scope}"
        )
    # A retry is signed with a key that may do everything the command needs.
    valid = {k: v for k, v in valid_keys(conn, envelope.principal).items() if v.scope is None}
    if not valid:
        raise _cannot_retry(
            envelope.command_id,
            f"{envelope.principal} has no valid unscoped signing key; create one with "
            f"`jobordre keys create {envelope.principal}` first",
        )
    try:
        payload = open_payload(envelope.payload, envelope.command_id, key)
    except NotAuthenticated as error:
        raise _cannot_retry(envelope.command_id, error.message) from None
    return new_envelope(
        envelope.kind,
        envelope.principal,
        payload,
        command_id=envelope.command_id,
        correlation_id=envelope.correlation_id,
        caseworker=envelope.caseworker,
        key=next(iter(valid.values())),
    ).to_json()
