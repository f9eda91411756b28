"""Thin Dramatiq actors over :class:`shared.foundation.Foundation`, one per command kind.

An actor decodes the envelope, lets the foundation apply it (exactly once, see
``shared/foundation.py``) and pushes the reply to the waiting client. Domain rejections are
replies, not exceptions, so they are never retried. Infrastructure errors raise, and
Dramatiq retries them with backoff; a message that still fails when its retries are spent
is kept by :class:`DeadLetters` in the store with its traceback, and its client is told.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from pydantic import TypeAdapter, ValidationError

from shared import keys, sealing_v2, store
from shared.commands import CommandKind
from shared.envelope import (
    SCHEMA_VERSION_2,
    CommandId,
    Envelope,
    decode_envelope,
    mask_personal_data,
    one_mask_form,
)
from shared.errors import InvalidInput, JobordreError, Unavailable
from shared.foundation import Answer, Foundation, Signer, error_reply
from shared.redaction import redact_cpr
from shared.sealing import seal_reply
from shared.settings import Settings
from shared.signing import CLOCK_SKEW_MS, SigningKey
from workers.transport.broker import JobordreBroker, queue_for
from workers.transport.outbound import Outbound
from workers.worker.relay import Relay

#: Bytes of an undecodable message kept for inspection (a message is at most ~256 KiB).
KEPT_BYTES = 256 * 1024
#: Characters of a dead message shown to people.
SHOWN_CHARS = 4096

#: One JSON line per job: kind, principal, correlation id, duration, outcome; never a CPR.
job_log = logging.getLogger("jobordre.jobs")


@dataclass
class Runtime:
    """What the actors of one worker process share."""

    foundation: Foundation
    #: Where replies go: queued, and sent with the process's acks (workers/transport/outbound.py).
    replies: Outbound
    settings: Settings
    relay: Relay

    def reply(self, reply: dict[str, Any], key: Signer | None, envelope: Envelope) -> None:
        """Push a reply to its client, sealed and authenticated for the command it answers.

        Without a key (the envelope was not authentic) nothing is pushed: a forgery must not
        speak on the reply list of the real command whose id it copied.
        """
        if key is None or envelope.signature is None:
            return
        self._push(reply, key, envelope.signature)

    def _push(self, reply: dict[str, Any], key: Signer, request_signature: str) -> None:
        """Seal ``reply`` for the holder of ``key`` (protocol 1: MAC and seal from its
        secret; 2: sealed to its X25519 key, signed by the foundation) and push it."""
        if isinstance(key, SigningKey):
            wire = seal_reply(reply, key, request_signature)
        else:
            foundation_key = self.foundation.foundation_key
            if foundation_key is None:
                return
            wire = sealing_v2.seal_reply(
                one_mask_form(reply),
                key.principal,
                request_signature,
                key.seal_public,
                foundation_key,
            )
        self.replies.push_reply(self.settings.redis_prefix, self.settings.reply_ttl_ms, wire)

    def process(self, kind: CommandKind, raw: Any) -> None:
        """Apply one message's envelope and answer its client: a query here, a write as a
        batch of one through :meth:`process_writes`, the one entry of the write path.

        An infrastructure error is raised, for Dramatiq to retry the message.
        """
        if kind.writes:
            (error,) = self.process_writes([(kind, raw)])
            if error is not None:
                raise error
            return
        started = time.perf_counter()
        envelope = self.envelope(kind, raw)
        if envelope is not None:
            self._answered(kind, envelope, self.foundation.answer(envelope), started)

    def process_writes(self, messages: Sequence[tuple[CommandKind, Any]]) -> list[Exception | None]:
        """Apply many write messages in one transaction (``Foundation.answer_writes``) and
        answer their clients; per message, None or the infrastructure error to retry it for.
        """
        started = time.perf_counter()
        envelopes = [self.envelope(kind, raw) for kind, raw in messages]
        decoded = [envelope for envelope in envelopes if envelope is not None]
        outcomes = iter(self.foundation.answer_writes(decoded) if decoded else [])
        errors: list[Exception | None] = []
        for (kind, _), envelope in zip(messages, envelopes, strict=True):
            outcome = next(outcomes) if envelope is not None else None
            if isinstance(outcome, Answer) and envelope is not None:
                self._answered(kind, envelope, outcome, started)
            errors.append(outcome if isinstance(outcome, Exception) else None)
        return errors

    def envelope(self, kind: CommandKind, raw: Any) -> Envelope | None:
        """The envelope of a message for the ``kind`` actor; None if it was undecodable or
        misrouted (kept as a dead letter, and a misrouted one's client told)."""
        try:
            envelope = decode_envelope(raw)
        except InvalidInput as error:
            self._undecodable(kind, raw, error)
            self._answer_refused_form(raw, error)
            return None
        if envelope.kind == kind:
            return envelope
        misrouted = InvalidInput(
            f"envelope.kind: {envelope.kind} arrived at the {kind} actor; the "
            "client must send each kind to its own actor",
            field="kind",
        )
        self._undecodable(kind, raw, misrouted)
        authentic = self._authentic(raw)
        if authentic is not None:
            self.reply(error_reply(envelope.command_id, misrouted), authentic[1], envelope)
        return None

    def _answered(
        self, kind: CommandKind, envelope: Envelope, answer: Answer, started: float
    ) -> None:
        """Push an answer to its client, nudge the relay after a write, log the job."""
        reply = answer.reply
        if kind.writes and reply["ok"] and self.settings.relay_push_on_commit:
            self.relay.nudge()
        self.reply(reply, answer.key, envelope)
        job_log.info(
            json.dumps(
                {
                    "at": datetime.now(UTC).isoformat(),
                    "pid": os.getpid(),
                    "kind": kind.value,
                    "command_id": envelope.command_id,
                    "principal": envelope.principal,
                    "correlation_id": envelope.correlation_id,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    "outcome": "ok" if reply["ok"] else reply["error"]["code"],
                }
            )
        )

    def _keep(
        self,
        raw: Any,
        *,
        source: str,
        code: str,
        reason: str,
        kind: str | None,
        traceback: str | None = None,
    ) -> str | None:
        """Keep a message as a dead letter, shown masked; returns the command id it named."""
        document = _as_json(raw)
        shown = document if isinstance(document, str) else json.dumps(mask_personal_data(document))
        with self.foundation.store.write() as conn:
            store.record_dead_letter(
                conn,
                at=self.foundation.clock(),
                source=source,
                code=code,
                reason=reason,
                message=redact_cpr(shown[:SHOWN_CHARS]),
                command_id=_command_id_of(raw),
                kind=kind[:100] if kind else None,
                traceback=redact_cpr(traceback) if traceback is not None else None,
                original=raw if isinstance(raw, str) else json.dumps(raw),
            )
        return _command_id_of(raw)

    def _undecodable(self, kind: CommandKind, raw: Any, error: InvalidInput) -> None:
        """Keep a message nobody can apply. Its client is not answered: an undecodable
        message cannot be authenticated, so an answer could be anyone's words."""
        self._keep(
            raw, source="undecodable", code=error.code, reason=error.message, kind=kind.value
        )
        job_log.warning(
            json.dumps(
                {"kind": kind.value, "outcome": error.code, "reason": redact_cpr(error.message)}
            )
        )

    def undecodable_message(self, queue_name: str, data: bytes) -> None:
        """Keep bytes found on a queue that are not a Dramatiq message at all."""
        self._keep(
            data[:KEPT_BYTES].decode("utf-8", errors="replace"),
            source="undecodable",
            code="validation_error",
            reason=f"{len(data)} bytes on queue {queue_name} are not a Dramatiq message "
            "(JSON with actor_name, args, options); taken off the queue and kept here",
            kind=None,
        )
        job_log.warning(json.dumps({"queue": queue_name, "outcome": "undecodable"}))

    def unknown_kind(self, message: dramatiq.MessageProxy) -> None:
        """Keep a message addressed to an actor jobordre does not have."""
        self._keep(
            message.args[0] if message.args else None,
            source="undecodable",
            code="validation_error",
            reason=f"kind {message.actor_name!r} is unknown; the kinds are "
            + ", ".join(kind.value for kind in CommandKind),
            kind=message.actor_name,
        )

    def dead_letter(self, message: dramatiq.MessageProxy, traceback: str | None) -> None:
        """Keep a message whose retries are spent, and tell its client."""
        command_id = self._keep(
            message.args[0] if message.args else None,
            source="crashed",
            code="unavailable",
            reason="the job kept failing on infrastructure errors; see the traceback",
            kind=message.actor_name,
            traceback=traceback or "",
        )
        envelope = self._authentic(message.args[0] if message.args else None)
        if command_id is not None and envelope is not None:
            envelope_, key = envelope
            self.reply(
                error_reply(
                    command_id,
                    Unavailable(
                        f"command {command_id} failed repeatedly and was set aside as a "
                        "dead letter; ops see it with `jobordre dead list`"
                    ),
                ),
                key,
                envelope_,
            )

    def _answer_refused_form(self, raw: Any, error: InvalidInput) -> None:
        """Tell the signer of an authentic version 2 command why its form was refused.

        Only a command whose Ed25519 signature verifies under a valid key is answered
        (sealed to that key, on its principal's reply list), and only inside the signature
        window when its ``sent_at`` can be read at all; anything else gets nothing, as a
        forgery must.
        """
        document = _as_json(raw)
        if not isinstance(document, dict) or document.get("schema_version") != SCHEMA_VERSION_2:
            return
        command_id, request_signature = document.get("command_id"), document.get("signature")
        if not isinstance(request_signature, str) or not _is_command_id(command_id):
            return
        signer = keys.signer_v2(self.foundation.store.connection(), document)
        if signer is None or _outside_window(document.get("sent_at"), self.foundation):
            return
        self._push(error_reply(str(command_id), error), signer, request_signature)

    def _authentic(self, raw: Any) -> tuple[Envelope, Signer] | None:
        """The envelope of a raw message and the key that signed it, if it is authentic."""
        try:
            envelope = decode_envelope(raw)
            return envelope, self.foundation.authenticate(envelope)
        except JobordreError:
            return None


_COMMAND_ID = TypeAdapter(CommandId)


def _is_command_id(value: Any) -> bool:
    """Whether ``value`` is a well-formed command id (one that can name a reply list)."""
    try:
        _COMMAND_ID.validate_python(value, strict=True)
    except ValidationError:
        return False
    return True


def _outside_window(sent_at: Any, foundation: Foundation) -> bool:
    """Whether a readable ``sent_at`` (any ISO 8601 form with a zone) is outside the
    signature window: such a command is a replay, not a form to fix."""
    try:
        moment = datetime.fromisoformat(str(sent_at))
    except ValueError:
        return False
    if moment.tzinfo is None:
        return False
    now = foundation.clock()
    return (
        moment > now + timedelta(milliseconds=CLOCK_SKEW_MS)
        or (now - moment).total_seconds() * 1000 > foundation.max_age_ms
    )


def _as_json(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _command_id_of(raw: Any) -> str | None:
    document = _as_json(raw)
    if isinstance(document, dict):
        command_id = document.get("command_id")
        if isinstance(command_id, str) and 0 < len(command_id) <= 100:
            return command_id
    return None


class DeadLetters(dramatiq.Middleware):
    """Hands messages whose retries are spent to :meth:`Runtime.dead_letter`.

    Must come before ``Retries`` in the middleware list: after-hooks run in reverse, so it
    sees the message after ``Retries`` decided to fail it.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is not None and message.failed:
            self.runtime.dead_letter(message, message.options.get("traceback"))


def declare_actors(
    broker: RedisBroker, runtime: Runtime
) -> dict[CommandKind, dramatiq.Actor[Any, Any]]:
    """Declare one actor per command kind on ``broker``, all served by ``runtime``.

    A write kind's actor is the write path for one message (:meth:`Runtime.process`, a
    batch of one through :meth:`Runtime.process_writes`). The batch consumer
    (workers/worker/command_batches.py) sends well-formed writes to
    :meth:`Runtime.process_writes` many at a time, and runs the actor only for a message it
    cannot batch; the actor is also what routes, retries and dead-letters a write, as
    Dramatiq's middleware reads its options.
    """
    broker.add_middleware(DeadLetters(runtime), before=type(broker.middleware[0]))
    if isinstance(broker, JobordreBroker):
        broker.undecodable_handler = runtime.undecodable_message
        broker.unknown_actor_handler = runtime.unknown_kind
    actors: dict[CommandKind, dramatiq.Actor[Any, Any]] = {}
    for kind in CommandKind:

        def run(raw: Any, _kind: CommandKind = kind) -> None:
            runtime.process(_kind, raw)

        actors[kind] = dramatiq.actor(
            actor_name=kind.value,
            queue_name=queue_for(kind),
            broker=broker,
            max_retries=runtime.settings.max_retries,
        )(run)
    return actors
