"""The foundation: applies one command envelope to the store, exactly once.

This is the whole delivery contract on the worker side. First the signature: a command
that is unsigned, forged or tampered with is refused as ``forbidden``, only the attempt is
kept (see :mod:`shared.signing`), and it gets no reply: it must not speak on the reply list
of the real command it copies. The sealed personal data of an authentic command are opened
(:mod:`shared.sealing`), and a command beyond its key's scope
(:func:`shared.keys.check_scope`, the notifier's key) is refused as ``forbidden`` before
its operation runs. A write command is then applied in ONE transaction together with
its change-log rows and its ledger row keyed by (principal, ``command_id``), in a savepoint
of its own when several commands share a transaction (:mod:`shared.store.group_commit`;
no reply leaves before that transaction committed): a command
id belongs to the organisation that sent it, so nobody else's command can claim it. A
redelivered or resent command finds the ledger row and gets the stored reply without
changing anything again. A read is answered once per command id: a captured read replayed
inside the signature window is refused, and shows nothing and logs no access.

A command rejected for a validation, authorisation or state error is rolled back, and the
rejection itself is stored (in the ledger, so a redelivery is rejected the same way, and
as a dead letter, so people can see it). Anything else (a busy store, a bug) propagates:
Dramatiq retries the message and in the end the worker dead-letters it with its traceback.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pydantic import BaseModel

from shared import (
    access,
    follows,
    inbox,
    keys,
    orders,
    placements,
    privacy,
    results,
    rules,
    sealing,
    sealing_v2,
    signing,
    store,
)
from shared.clock import Clock, utc_now
from shared.commands import CommandKind
from shared.context import MAX_FOLLOWS, Context
from shared.envelope import (
    SCHEMA_VERSION_2,
    Envelope,
    mask_personal_data,
    masked_json,
    parse_payload,
)
from shared.errors import (
    CommandIdReused,
    InvalidInput,
    JobordreError,
    LateFailure,
    NotAuthenticated,
    Unavailable,
)
from shared.signing import SigningKey
from shared.signing_v2 import FoundationKey, PublicKeys
from shared.store import Store, Tx
from shared.store.group_commit import MAX_BATCH, GroupCommit

Operation = Callable[[Context, Any], dict[str, Any]]
#: The key a command was verified under, and its reply sealed for: a version 1 secret or
#: a version 2 organisation's public keys.
Signer = SigningKey | PublicKeys

#: The operation behind each command kind.
OPERATIONS: dict[CommandKind, Operation] = {
    CommandKind.REGISTER_ORDER: orders.register,
    CommandKind.UPDATE_ORDER: orders.update,
    CommandKind.CHANGE_ORDER_STATUS: orders.change_status,
    CommandKind.SEARCH_ORDERS: orders.search,
    CommandKind.GET_ORDER: orders.get,
    CommandKind.ORDER_CHANGES: inbox.changes,
    CommandKind.REGISTER_PLACEMENT: placements.register,
    CommandKind.CHANGE_PLACEMENT_STATUS: placements.change_status,
    CommandKind.PLACEMENT_LOG: placements.log,
    CommandKind.TAKE_ORDER: orders.take,
    CommandKind.RELEASE_ORDER: orders.release,
    CommandKind.EXPIRE_ORDERS: orders.expire,
    CommandKind.INBOX: inbox.inbox,
    CommandKind.FOLLOW: follows.follow,
    CommandKind.UNFOLLOW: follows.unfollow,
    CommandKind.FOLLOWING: follows.following,
    CommandKind.AUDIT_PERSON: privacy.audit,
    CommandKind.ANONYMISE_PLACEMENTS: privacy.anonymise,
    CommandKind.COMMAND_RESULT: results.command_result,
}


def ok_reply(command_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The reply a client receives for a command that succeeded."""
    return {"command_id": command_id, "ok": True, "result": result}


def error_reply(command_id: str | None, error: JobordreError) -> dict[str, Any]:
    """The reply a client receives for a command that was rejected."""
    return {"command_id": command_id, "ok": False, "error": error.to_dict()}


class _Prepared(NamedTuple):
    """A write command ready for the lock: verified, opened, and its payload validated (or
    the error that refuses it, recorded under the lock)."""

    envelope: Envelope
    #: The key its reply is sealed for; None if it may have no reply.
    key: Signer | None
    opened: dict[str, Any]
    payload: BaseModel | JobordreError
    #: The ledger digest of ``opened``, if the key was at hand before the lock.
    digest: str | None = None


def _digest_with(key: bytes, envelope: Envelope, payload: dict[str, Any]) -> str:
    """Keyed digest of the opened payload: a resend (sealed afresh) digests the same, and
    the ledger holds nothing a CPR could be guessed back from without the key."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    mac = hmac.new(key, f"{envelope.kind}\n{canonical}".encode(), hashlib.sha256)
    return DIGEST_PREFIX + mac.hexdigest()


class _Redelivered(Exception):
    """The command's id was claimed before (a redelivery, or a concurrent delivery that
    committed first): the command is rolled back and answered from the ledger."""


#: Fewest commands a part of a batch gets (:func:`_parts`): a batch this small is applied
#: in one transaction. Small batches mean the store keeps up with the commands; a
#: transaction more per batch then costs CPU and gains nothing.
MIN_PART = 8


def _parts(prepared: Sequence[_Prepared | Exception], most: int) -> list[list[int]]:
    """The places of ``prepared`` in at most ``most`` parts of about :data:`MIN_PART` or
    more, the commands on one order in one part, each part in the batch's order."""
    count = min(most, len(prepared) // MIN_PART)
    if count <= 1:
        return [list(range(len(prepared)))]
    parts: list[list[int]] = [[] for _ in range(count)]
    for place, each in enumerate(prepared):
        order_id = getattr(each.payload, "order_id", None) if isinstance(each, _Prepared) else None
        parts[place % len(parts) if order_id is None else hash(order_id) % len(parts)].append(place)
    return [part for part in parts if part]


def _log_accesses(
    conn: Tx, envelope: Envelope, accesses: list[access.Access], at: datetime
) -> None:
    """Write a command's access-log rows; for a protocol 2 command also keep its signed
    envelope, which proves to a third party who asked (``jobordre audit proof``)."""
    if not accesses:
        return
    access.write(conn, accesses, envelope.principal, envelope.caseworker, at, envelope.command_id)
    if envelope.schema_version == SCHEMA_VERSION_2 and envelope.key_id is not None:
        conn.execute(
            "INSERT INTO signed_commands (principal, command_id, key_id, envelope, at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                envelope.principal,
                envelope.command_id,
                envelope.key_id,
                envelope.to_json(),
                at.isoformat(),
            ),
        )


@dataclass(frozen=True, slots=True)
class Answer:
    """What the foundation says to one envelope: the reply, and the key it may be sent under.

    ``key`` is ``None`` when the envelope was not authentic: its reply must not be sent.
    """

    reply: dict[str, Any]
    key: Signer | None


#: Name of the ledger-digest key in ``foundation_secrets``.
DIGEST_KEY = "ledger_digest_key"
#: Prefix of a keyed ledger digest (older rows hold a plain SHA-256 of the payload).
DIGEST_PREFIX = "k1:"


class Foundation:
    """Applies command envelopes to a :class:`Store`; the clock is injectable for tests."""

    def __init__(
        self,
        store: Store,
        clock: Clock = utc_now,
        *,
        max_age_ms: int = 15 * 60 * 1000,
        max_batch: int = MAX_BATCH,
        max_follows: int = MAX_FOLLOWS,
        foundation_key: FoundationKey | None = None,
    ) -> None:
        self.store = store
        #: Most things one caseworker may follow (``JOBORDRE_MAX_FOLLOWS_PER_CASEWORKER``).
        self.max_follows = max_follows
        #: The foundation's protocol 2 key pair: opens payloads, signs replies (none: this
        #: foundation answers version 1 only).
        self.foundation_key = foundation_key
        #: Every write of this process goes through one group commit (see its module).
        self.writes = GroupCommit(store, max_batch=max_batch)
        self.clock = clock
        self.max_age_ms = max_age_ms
        #: A group commit per part of a batch (:meth:`answer_writes`): the first is
        #: :attr:`writes`, the others run their transactions beside it.
        self._part_writes = [self.writes] + [
            GroupCommit(store, max_batch=max_batch)
            # A stand-in store (a test's) may not say: one writer, as the interface's default.
            for _ in range(max(1, getattr(store, "write_concurrency", 1)) - 1)
        ]
        self._pool_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def handle(self, envelope: Envelope) -> dict[str, Any]:
        """Apply one envelope and return its reply; see the module docstring for guarantees."""
        return self.answer(envelope).reply

    def authenticate(self, envelope: Envelope) -> Signer:
        """The organisation's valid key that signed ``envelope``; :class:`NotAuthenticated`.

        The keys come from the store's key cache: a key revoked elsewhere is refused within
        :data:`shared.keys.KEY_CACHE_MS`.
        """
        if envelope.schema_version == SCHEMA_VERSION_2:
            signer = keys.signer_v2(self.store.connection(), envelope.wire)
            if signer is None or signer.principal != envelope.principal:
                raise NotAuthenticated(
                    f"command from {envelope.principal} is not signed by a valid version 2 "
                    f"key of that organisation (key {envelope.key_id}: unknown, revoked, "
                    "another organisation's, or the signature does not match the content)"
                )
            return signer
        return signing.verify(
            envelope.model_dump(mode="json"),
            keys.cached_valid_keys(self.store.connection(), envelope.principal, envelope.key_id),
        )

    def open_payload(self, envelope: Envelope, key: Signer) -> dict[str, Any]:
        """The payload with what is sealed in it opened, for the key that signed it.

        Version 1 seals fields (:class:`NotAuthenticated` if one does not open); version 2
        the whole payload (:class:`InvalidInput`, field ``payload``, as it is a form the
        organisation can fix and is told of).
        """
        if isinstance(key, SigningKey):
            return sealing.open_payload(envelope.payload, envelope.command_id, key)
        if self.foundation_key is None:
            raise Unavailable(
                "this worker has no foundation key for protocol 2; set "
                "JOBORDRE_FOUNDATION_KEY_FILE (workers make it on start)"
            )
        return sealing_v2.open_payload(
            envelope.payload,
            envelope.principal,
            envelope.command_id,
            envelope.kind.value,
            self.foundation_key,
        )

    def _revoked_signer(self, envelope: Envelope) -> Signer | None:
        """The revoked key of the principal that signed ``envelope``, if one did."""
        if envelope.schema_version == SCHEMA_VERSION_2:
            signer = keys.signer_v2(self.store.connection(), envelope.wire, revoked=True)
            return signer if signer is not None and signer.principal == envelope.principal else None
        try:
            return signing.verify(
                envelope.model_dump(mode="json"),
                keys.every_key(self.store.connection(), envelope.principal),
            )
        except NotAuthenticated:
            return None

    def answer(self, envelope: Envelope) -> Answer:
        """Apply one envelope; the reply and the key it is to be sealed for (if authentic).

        An infrastructure error (a busy store, a bug) is raised, for the message to be
        retried.
        """
        if envelope.kind.writes:
            outcome = self.answer_writes([envelope])[0]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        try:
            key = self.authenticate(envelope)
        except NotAuthenticated as error:
            # As for a write (see _prepare_write): the attempt kept, answered only to the
            # holder of a revoked key.
            self._record_rejection(envelope, error)
            return Answer(error_reply(envelope.command_id, error), self._revoked_signer(envelope))
        try:
            payload = self.open_payload(envelope, key)
            self._check_age(envelope)
            return Answer(self._read(envelope, payload, key), key)
        except (NotAuthenticated, InvalidInput) as error:
            self._record_rejection(envelope, error)
            return Answer(error_reply(envelope.command_id, error), key)

    def answer_writes(self, envelopes: Sequence[Envelope]) -> list[Answer | Exception]:
        """Apply write envelopes in ONE transaction, each in a savepoint of its own (where
        writers run side by side, one transaction per part: see below).

        Returns, in order, each envelope's :class:`Answer`, or the infrastructure error
        that stopped it (its savepoint rolled back, the others unharmed) for its message
        to be retried alone. If the transaction itself fails (BEGIN or COMMIT), every
        envelope gets that error and none of them happened. No answer is returned before
        the transaction that holds its ledger row committed.
        """
        # Verified, opened and validated before the write lock is taken: there is one
        # writer at a time, and it should not wait for Python work that needs no lock.
        prepared = [self._prepare_write(envelope) for envelope in envelopes]
        parts = _parts(prepared, len(self._part_writes))
        if len(parts) == 1:
            return self._apply_part(self.writes, prepared)
        # Where writers run side by side (PostgreSQL), the batch is cut into parts applied
        # at once, each in a transaction of its own: a command waits for its own round
        # trips, not the whole batch's. A part's commands share their orders with no other
        # part, so parts never wait for each other's row locks.
        outcomes: list[Answer | Exception] = [Unavailable("not applied")] * len(prepared)
        applied = self._parts_pool().map(
            self._apply_part,
            self._part_writes[: len(parts)],
            [[prepared[place] for place in places] for places in parts],
        )
        for places, answers in zip(parts, applied, strict=True):
            for place, answer in zip(places, answers, strict=True):
                outcomes[place] = answer
        return outcomes

    def _parts_pool(self) -> ThreadPoolExecutor:
        """The threads applying the parts of a batch (made on first use)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    len(self._part_writes), thread_name_prefix="jobordre-writes"
                )
            return self._pool

    def _apply_part(
        self, writes: GroupCommit, prepared: list[_Prepared | Exception]
    ) -> list[Answer | Exception]:
        """Prepared write commands in ONE transaction of ``writes`` (see
        :meth:`answer_writes`)."""
        outcomes: list[Answer | Exception] = []

        def apply(tx: Tx, *, settle_each: bool) -> None:
            before, tx.settle_each = tx.settle_each, settle_each
            try:
                outcomes[:] = [
                    self._apply_write(tx, each) if isinstance(each, _Prepared) else each
                    for each in prepared
                ]
            finally:
                tx.settle_each = before

        try:
            try:
                # A command's savepoint is released without waiting for its last
                # statements (one round trip a command less on PostgreSQL); they are
                # checked with the next command's first wait.
                writes.run(functools.partial(apply, settle_each=False))
            except LateFailure:
                # Such a statement failed, and nothing of the part was committed: done
                # again with each command settled, so the failure is its command's alone.
                writes.run(functools.partial(apply, settle_each=True))
        except Exception as error:
            return [error] * len(prepared)
        return outcomes

    def _prepare_write(self, envelope: Envelope) -> _Prepared | Exception:
        """What a write command needs under the lock; an infrastructure error as is."""
        try:
            try:
                key = self.authenticate(envelope)
            except NotAuthenticated as error:
                # Not the organisation's command: keep the attempt, but no ledger row (it
                # cannot block the real command with that id) and no reply, except to the
                # holder of a key the organisation revoked: it signed, so it may learn it
                # is refused, and a reply under its key is one no client of a valid key
                # believes.
                return _Prepared(envelope, self._revoked_signer(envelope), {}, error)
            try:
                opened = self.open_payload(envelope, key)
            except (NotAuthenticated, InvalidInput) as error:
                return _Prepared(envelope, key, {}, error)
            try:
                payload = parse_payload(envelope, opened)
                keys.check_scope(key, envelope, payload)
            except JobordreError as error:
                if error.retryable:
                    raise
                # A malformed command (or redelivery), or one beyond its key's scope, is
                # answered by the ledger all the same.
                return _Prepared(envelope, key, opened, error)
            secret = access.remembered_secret(self.store.connection(), DIGEST_KEY)
            digest = _digest_with(secret, envelope, opened) if secret is not None else None
            return _Prepared(envelope, key, opened, payload, digest)
        except Exception as error:
            return error

    def _apply_write(self, tx: Tx, command: _Prepared) -> Answer | Exception:
        """One prepared write command inside the batch's transaction ``tx``."""
        envelope, key, opened, payload, digest = command
        try:
            try:
                try:
                    with tx.savepoint():
                        if isinstance(payload, JobordreError):
                            raise payload
                        digest = digest or self._digest(tx, envelope, opened)
                        return Answer(self._write_in(tx, envelope, opened, payload, digest), key)
                except _Redelivered:
                    # Rolled back to its savepoint: the ledger row's reply, if the same
                    # command's (CommandIdReused if not).
                    assert digest is not None
                    with tx.savepoint():
                        stored = self._stored_reply(tx, envelope, opened, digest)
                    if stored is None:
                        raise Unavailable(
                            "the command's ledger row vanished; the command will be retried"
                        ) from None
                    return Answer(stored, key)
            except (NotAuthenticated, CommandIdReused) as error:
                # No ledger row: the id may still be the rightful sender's to use.
                with tx.savepoint():
                    self.record_rejection(tx, envelope, error)
                return Answer(error_reply(envelope.command_id, error), key)
            except JobordreError as error:
                if error.retryable:
                    return error
                # Rolled back to its savepoint; its rejection is recorded in its place.
                with tx.savepoint():
                    digest = digest or self._digest(tx, envelope, opened)
                    reply = self._rejected_in(tx, envelope, digest, opened, error)
                return Answer(reply, key)
        except Exception as error:
            return error

    def _check_age(self, envelope: Envelope) -> None:
        signing.check_age(envelope.sent_at, self.clock(), self.max_age_ms)

    def _context(self, conn: Tx, envelope: Envelope) -> Context:
        return Context(
            conn=conn,
            who=envelope.who,
            at=self.clock(),
            command_id=envelope.command_id,
            caseworker=envelope.caseworker,
            max_follows=self.max_follows,
        )

    @staticmethod
    def _apply(ctx: Context, envelope: Envelope, payload: BaseModel) -> dict[str, Any]:
        rules.check_command(ctx.who, envelope.kind)
        return OPERATIONS[envelope.kind](ctx, payload)

    def _digest(self, conn: Tx, envelope: Envelope, payload: dict[str, Any]) -> str:
        return _digest_with(access.foundation_secret(conn, DIGEST_KEY), envelope, payload)

    def _write_in(
        self,
        conn: Tx,
        envelope: Envelope,
        opened: dict[str, Any],
        payload: BaseModel,
        digest: str,
    ) -> dict[str, Any]:
        """A write command inside its (group-committed) transaction: the stored reply of a
        redelivery, or the command applied with its access-log and ledger rows.

        The ledger row is claimed before the command is applied: a concurrent delivery of
        the same command (another host, where writers run side by side) waits for this
        transaction and then answers with its reply.
        """
        claim = store.claim_command(
            conn,
            command_id=envelope.command_id,
            kind=envelope.kind.value,
            principal=envelope.principal,
            digest=digest,
            at=self.clock(),
        )
        # Whether the claim held is read when the command settles (at once on SQLite, with
        # the command's last round trip on PostgreSQL): a redelivery is rolled back to its
        # savepoint then and answered from the ledger (_Redelivered).
        conn.expect_one(claim, _Redelivered)
        try:
            # A redelivery past the window is answered from the ledger; a new one must be
            # fresh.
            self._check_age(envelope)
            ctx = self._context(conn, envelope)
            reply = ok_reply(envelope.command_id, self._apply(ctx, envelope, payload))
        except JobordreError:
            if claim.rowcount != 1:
                # Refused because it was applied before: the ledger answers.
                raise _Redelivered from None
            raise
        _log_accesses(conn, envelope, ctx.accesses, ctx.at)
        # The ledger keeps no CPR: a resend gets the reply with the CPR masked.
        store.finish_command(
            conn,
            command_id=envelope.command_id,
            principal=envelope.principal,
            outcome="ok",
            reply=masked_json(reply),
        )
        return reply

    @staticmethod
    def _stored_reply(
        conn: Tx, envelope: Envelope, opened: dict[str, Any], digest: str
    ) -> dict[str, Any] | None:
        row = store.ledger_entry(conn, envelope.principal, envelope.command_id)
        if row is None:
            return None
        stored = str(row["digest"])
        if stored == store.ANONYMISED_DIGEST:
            # The payload's digest went with the person: the id's anonymised reply stands.
            anonymised: dict[str, Any] = json.loads(row["reply"])
            return anonymised
        if not stored.startswith(DIGEST_PREFIX):
            # A row written before keyed digests: its payload travelled in clear then.
            legacy = envelope.model_copy(update={"payload": opened})
            digest = legacy.payload_digest()
        if not hmac.compare_digest(stored, digest):
            raise CommandIdReused(
                f"command_id {envelope.command_id} was used before for a different command; "
                "give every new command a new id",
                field="command_id",
            )
        reply: dict[str, Any] = json.loads(row["reply"])
        return reply

    def _record(
        self, conn: Tx, envelope: Envelope, digest: str, outcome: str, reply: dict[str, Any]
    ) -> bool:
        """The command's ledger row; False if its id was there already."""
        return store.record_command(
            conn,
            command_id=envelope.command_id,
            kind=envelope.kind.value,
            principal=envelope.principal,
            digest=digest,
            outcome=outcome,
            # The ledger keeps no CPR: a resend gets the reply with the CPR masked.
            reply=masked_json(reply),
            at=self.clock(),
        )

    def _rejected_in(
        self,
        conn: Tx,
        envelope: Envelope,
        digest: str,
        opened: dict[str, Any],
        error: JobordreError,
    ) -> dict[str, Any]:
        """Record a rejected command (ledger row, dead letter) in the transaction ``conn``."""
        reply = error_reply(envelope.command_id, error)
        if not self._record(conn, envelope, digest, "rejected", reply):
            # A concurrent delivery of the same command decided first: answer as it did.
            stored = self._stored_reply(conn, envelope, opened, digest)
            return stored if stored is not None else reply
        # A refusal that told the caller something about a person (the person is on the
        # order already) is an access of that person's data, and is logged.
        _log_accesses(conn, envelope, error.accesses, self.clock())
        self.record_rejection(conn, envelope, error)
        return reply

    def _record_rejection(self, envelope: Envelope, error: JobordreError) -> None:
        self.writes.run(lambda conn: self.record_rejection(conn, envelope, error))

    def record_rejection(self, conn: Tx, envelope: Envelope, error: JobordreError) -> None:
        """Keep a rejected command as a dead letter, personal data masked."""
        store.record_dead_letter(
            conn,
            at=self.clock(),
            source="rejected",
            code=error.code,
            reason=error.message,
            message=json.dumps(mask_personal_data(envelope.model_dump(mode="json"))),
            command_id=envelope.command_id,
            kind=envelope.kind.value,
            principal=envelope.principal,
            original=envelope.to_json(),
        )

    def _read(self, envelope: Envelope, opened: dict[str, Any], key: Signer) -> dict[str, Any]:
        try:
            payload = parse_payload(envelope, opened)
            keys.check_scope(key, envelope, payload)
            with self.store.read() as conn:
                ctx = self._context(conn, envelope)
                reply = ok_reply(envelope.command_id, self._apply(ctx, envelope, payload))
            self.writes.run(lambda conn: self._claim_read(conn, envelope, ctx))
            return reply
        except CommandIdReused:
            raise
        except JobordreError as error:
            if error.retryable:
                raise
            if error.code != "not_found":
                # A query someone may not make, or cannot write, is worth seeing; a miss is not.
                self._record_rejection(envelope, error)
            return error_reply(envelope.command_id, error)

    def _claim_read(self, conn: Tx, envelope: Envelope, ctx: Context) -> None:
        """Claim an answered read, with the access-log rows of what it showed.

        The read is claimed once it has been answered (a read that crashed is retried, and
        must still be answered): a replay, even a concurrent one, finds the claim, and its
        result is thrown away before anyone sees it.
        """
        forget = ctx.at - timedelta(milliseconds=self.max_age_ms + 2 * signing.CLOCK_SKEW_MS)
        if not store.claim_read(conn, envelope.principal, envelope.command_id, ctx.at, forget):
            raise CommandIdReused(
                f"command_id {envelope.command_id}: this read was answered already; "
                "a read is answered once, so send it again with a new command id",
                field="command_id",
            )
        _log_accesses(conn, envelope, ctx.accesses, ctx.at)
