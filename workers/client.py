"""The client: enqueue a command for the workers and wait for its reply.

Delivery contract, as the client sees it: a command is enqueued at least once; the worker
applies its ``command_id`` at most once and stores the reply in the ledger. If no reply
arrives within ``reply_timeout_ms`` the client raises :class:`Unavailable` naming the
command id: resending with that id is always safe and returns the stored result.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import redis

from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope
from shared.errors import InvalidInput, JobordreError, Unavailable
from shared.models import Principal
from shared.sealing import open_reply
from shared.settings import Settings
from shared.signing import SigningKey
from workers.broker import build_broker, queue_for, redact, resolve_redis_url
from workers.credentials import signing_key
from workers.replies import wait_reply


class Client:
    """Sends commands as one organisation (``principal``) and returns their results."""

    def __init__(
        self,
        settings: Settings,
        principal: str,
        *,
        caseworker: str | None = None,
        url: str | None = None,
        key: SigningKey | None = None,
    ) -> None:
        self.settings = settings
        self.principal = str(Principal.parse(principal))
        self.caseworker = caseworker
        self.url = url or resolve_redis_url(settings)
        self.key = key or signing_key(settings, self.principal)
        self.broker = build_broker(settings, self.url)
        self.redis = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=10)
        #: The signatures of each command this client sent (every send of a command id,
        #: oldest first): a reply is believed only if its MAC binds it to one of them.
        self._sent: dict[str, list[str]] = {}

    def send(
        self,
        kind: CommandKind,
        payload: dict[str, Any],
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> str:
        """Enqueue a command without waiting; returns its command id."""
        envelope = new_envelope(
            kind,
            self.principal,
            payload,
            command_id=command_id,
            correlation_id=correlation_id,
            caseworker=self.caseworker,
            key=self.key,
        )
        return self.send_envelope(envelope)

    def send_envelope(self, envelope: Envelope) -> str:
        """Enqueue an envelope made (and signed) by this client's key; returns its id."""
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=queue_for(envelope.kind),
            actor_name=envelope.kind.value,
            args=(envelope.to_json(),),
            kwargs={},
            options={},
        )
        try:
            self.broker.enqueue(message)
        except redis.RedisError as error:
            raise Unavailable(
                f"cannot reach the broker at {redact(self.url)} ({type(error).__name__}); "
                "check that jobordre (or Redis) is running and send the command again with "
                f"--command-id {envelope.command_id} (it may have gone through)"
            ) from None
        if envelope.signature is not None:
            self._sent.setdefault(envelope.command_id, []).append(envelope.signature)
        return envelope.command_id

    def wait(self, command_id: str, timeout_ms: int | None = None) -> dict[str, Any]:
        """The result of a sent command; raises the error the worker reported."""
        timeout = timeout_ms if timeout_ms is not None else self.settings.reply_timeout_ms
        signatures = self._sent.get(command_id)
        if not signatures:
            raise InvalidInput(
                f"command {command_id} was not sent by this client; use `jobordre result` "
                "to fetch the stored result of an earlier command",
                field="command_id",
            )
        try:
            reply = wait_reply(
                self.redis,
                self.settings.redis_prefix,
                command_id,
                timeout,
                accept=lambda wire: self._accept(wire, command_id, signatures),
            )
        except redis.RedisError as error:
            raise Unavailable(
                f"lost the broker at {redact(self.url)} while waiting for command "
                f"{command_id} ({type(error).__name__}); resend it with --command-id "
                f"{command_id} to get its result"
            ) from None
        if reply is None:
            raise Unavailable(
                f"no worker answered command {command_id} within {timeout} ms; is a worker "
                f"running? Resending with --command-id {command_id} is safe. (A command that "
                "is not authentic, or cannot be decoded, gets no answer: ops see it with "
                "`jobordre dead list`)"
            )
        del self._sent[command_id]
        if not reply.get("ok"):
            raise JobordreError.from_dict(reply.get("error") or {})
        result: dict[str, Any] = reply["result"]
        return result

    def _accept(
        self, wire: dict[str, Any], command_id: str, signatures: list[str]
    ) -> dict[str, Any] | None:
        """The opened reply if it answers one of this client's sends of ``command_id``.

        Any send's answer is the command's answer (the ledger makes them agree), except a
        ``forbidden`` answer to an earlier send: that one is about the send (expired, say),
        and the latest send will be answered for itself.
        """
        for signature in reversed(signatures):
            reply = open_reply(wire, self.key, command_id, signature)
            if reply is None:
                continue
            stale = signature != signatures[-1]
            if stale and not reply["ok"] and reply["error"].get("code") == "forbidden":
                return None
            return reply
        return None

    def call(
        self,
        kind: CommandKind,
        payload: dict[str, Any],
        *,
        command_id: str | None = None,
        timeout_ms: int | None = None,
    ) -> dict[str, Any]:
        """Send a command and wait for its result."""
        return self.wait(self.send(kind, payload, command_id=command_id), timeout_ms)

    def close(self) -> None:
        """Close the client's Redis connections."""
        self.redis.close()
        self.broker.close()
