"""The foundation: applies one command envelope to the store, exactly once.

This is the whole delivery contract on the worker side. First the signature: a command
that is unsigned, forged, tampered with or expired is refused as ``forbidden`` and only the
attempt is kept (see :mod:`shared.signing`). A write command is then applied in ONE
SQLite transaction together with its change-log rows and its ledger row keyed by
``command_id``; a redelivered or resent command finds the ledger row and gets the stored
reply without changing anything again. A command rejected for a validation,
authorisation or state error is rolled back, and the rejection itself is stored (in the
ledger, so a redelivery is rejected the same way, and as a dead letter, so people can see
it). Anything else (a busy store, a bug) propagates: Dramatiq retries the message and in the
end the worker dead-letters it with its traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from shared import access, follows, inbox, keys, orders, placements, privacy, signing, store
from shared.commands import CommandKind
from shared.context import Context
from shared.envelope import Envelope, mask_personal_data, parse_payload
from shared.errors import CommandIdReused, JobordreError, NotAuthenticated
from shared.store import Store

Clock = Callable[[], datetime]
Operation = Callable[[Context, Any], dict[str, Any]]

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
}


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def ok_reply(command_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The reply a client receives for a command that succeeded."""
    return {"command_id": command_id, "ok": True, "result": result}


def error_reply(command_id: str | None, error: JobordreError) -> dict[str, Any]:
    """The reply a client receives for a command that was rejected."""
    return {"command_id": command_id, "ok": False, "error": error.to_dict()}


class Foundation:
    """Applies command envelopes to a :class:`Store`; the clock is injectable for tests."""

    def __init__(
        self, store: Store, clock: Clock = utc_now, *, max_age_ms: int = 15 * 60 * 1000
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_age_ms = max_age_ms

    def handle(self, envelope: Envelope) -> dict[str, Any]:
        """Apply one envelope and return its reply; see the module docstring for guarantees."""
        try:
            signing.verify(
                envelope.model_dump(mode="json"),
                keys.valid_keys(self.store.connection(), envelope.principal),
            )
            if envelope.kind.writes:
                return self._write(envelope)
            self._check_age(envelope)
            return self._read(envelope)
        except (NotAuthenticated, CommandIdReused) as error:
            # Not the organisation's command (or not a new one): keep the attempt, but no
            # ledger row, so it cannot block the real command with that id.
            with self.store.write() as conn:
                self.record_rejection(conn, envelope, error)
            return error_reply(envelope.command_id, error)

    def _check_age(self, envelope: Envelope) -> None:
        signing.check_age(envelope.sent_at, self.clock(), self.max_age_ms)

    def _context(self, conn: Any, envelope: Envelope) -> Context:
        return Context(
            conn=conn,
            who=envelope.who,
            at=self.clock(),
            command_id=envelope.command_id,
            caseworker=envelope.caseworker,
        )

    @staticmethod
    def _apply(ctx: Context, envelope: Envelope, payload: BaseModel) -> dict[str, Any]:
        return OPERATIONS[envelope.kind](ctx, payload)

    def _write(self, envelope: Envelope) -> dict[str, Any]:
        digest = envelope.payload_digest()
        try:
            # Validated before the write lock is taken: SQLite has one writer at a time,
            # and it should not wait for Python work that needs no lock. A malformed
            # redelivery is answered by the ledger in _reject all the same.
            payload = parse_payload(envelope)
            with self.store.write() as conn:
                stored = self._stored_reply(conn, envelope, digest)
                if stored is not None:
                    return stored
                # A redelivery past the window got its stored reply above; a new one must be
                # fresh.
                self._check_age(envelope)
                ctx = self._context(conn, envelope)
                reply = ok_reply(envelope.command_id, self._apply(ctx, envelope, payload))
                access.write(conn, ctx.accesses, envelope.principal, envelope.caseworker, ctx.at)
                self._record(conn, envelope, digest, "ok", reply)
                return reply
        except (NotAuthenticated, CommandIdReused):
            raise
        except JobordreError as error:
            if error.retryable:
                raise
            return self._reject(envelope, error, digest)

    @staticmethod
    def _stored_reply(conn: Any, envelope: Envelope, digest: str) -> dict[str, Any] | None:
        row = store.ledger_entry(conn, envelope.command_id)
        if row is None:
            return None
        if row["digest"] != digest:
            raise CommandIdReused(
                f"command_id {envelope.command_id} was used before for a different command; "
                "give every new command a new id",
                field="command_id",
            )
        reply: dict[str, Any] = json.loads(row["reply"])
        return reply

    def _record(
        self, conn: Any, envelope: Envelope, digest: str, outcome: str, reply: dict[str, Any]
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
            reply=mask_personal_data(reply),
            at=self.clock(),
        )

    def _reject(self, envelope: Envelope, error: JobordreError, digest: str) -> dict[str, Any]:
        reply = error_reply(envelope.command_id, error)
        with self.store.write() as conn:
            recorded = self._record(conn, envelope, digest, "rejected", reply)
            if not recorded:
                # A concurrent delivery of the same command decided first: answer as it did.
                stored = self._stored_reply(conn, envelope, digest)
                return stored if stored is not None else reply
            self.record_rejection(conn, envelope, error)
        return reply

    def record_rejection(self, conn: Any, envelope: Envelope, error: JobordreError) -> None:
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

    def _read(self, envelope: Envelope) -> dict[str, Any]:
        try:
            payload = parse_payload(envelope)
            with self.store.read() as conn:
                ctx = self._context(conn, envelope)
                reply = ok_reply(envelope.command_id, self._apply(ctx, envelope, payload))
            if ctx.accesses:
                # Reads run in a read transaction; what they showed of people is logged
                # right after, before the reply leaves.
                with self.store.write() as conn:
                    access.write(
                        conn, ctx.accesses, envelope.principal, envelope.caseworker, ctx.at
                    )
            return reply
        except JobordreError as error:
            if error.retryable:
                raise
            if error.code != "not_found":
                # A query someone may not make, or cannot write, is worth seeing; a miss is not.
                with self.store.write() as conn:
                    self.record_rejection(conn, envelope, error)
            return error_reply(envelope.command_id, error)
