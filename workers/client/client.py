"""The client: enqueue a command for the workers and wait for its reply.

It speaks the protocol of its key file: version 2 (RFC 8785, Ed25519, the whole payload
sealed to the foundation, replies on its principal's own list) for a key file with
``"v": 2``, version 1 otherwise (docs/protocol.md).

Delivery contract, as the client sees it: a command is enqueued at least once; the worker
applies its ``command_id`` at most once and stores the reply in the ledger. If no reply
arrives within ``reply_timeout_ms`` the client raises :class:`Unavailable` naming the
command id: resending with that id is always safe and returns the stored result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import dramatiq
import redis

from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope, new_envelope_v2
from shared.errors import InvalidInput, JobordreError, Unavailable
from shared.models import Principal
from shared.redis_url import is_sentinel_url
from shared.sealing import open_reply
from shared.sealing_v2 import open_reply as open_reply_v2
from shared.settings import Settings
from shared.signing import SigningKey
from shared.signing_v2 import OrganisationKey
from workers.client.credentials import signing_key
from workers.client.replies import wait_replies, wait_reply
from workers.transport.broker import (
    ReplicationUnconfirmed,
    enqueue_messages,
    queue_for,
    redact,
    resolve_redis_url,
)
from workers.transport.redis_connection import connect_redis

#: Replicas that must hold a command sent without waiting for its reply, on a Sentinel
#: broker (replication is asynchronous: a failover loses what no replica has yet).
REPLICA_ACKS = 1
#: How long such a send waits for the replicas' acknowledgement, in milliseconds.
REPLICA_ACK_TIMEOUT_MS = 2_000


def command_message(envelope: Envelope) -> dramatiq.Message[Any]:
    """The Dramatiq message that carries ``envelope`` to its kind's actor."""
    return dramatiq.Message(
        queue_name=queue_for(envelope.kind),
        actor_name=envelope.kind.value,
        args=(envelope.to_json(),),
        kwargs={},
        options={},
    )


class Client:
    """Sends commands as one organisation (``principal``) and returns their results."""

    def __init__(
        self,
        settings: Settings,
        principal: str,
        *,
        caseworker: str | None = None,
        url: str | None = None,
        key: SigningKey | OrganisationKey | None = None,
    ) -> None:
        self.settings = settings
        self.principal = str(Principal.parse(principal))
        self.caseworker = caseworker
        self.url = url or resolve_redis_url(settings)
        self.key = key or signing_key(settings, self.principal)
        if self.key.principal != self.principal:
            raise InvalidInput(
                f"the key {self.key.key_id} belongs to {self.key.principal}, not {self.principal}",
                field="key_file",
            )
        #: Whose reply list this client waits on: its principal's own in protocol 2.
        self.reply_principal = self.principal if isinstance(self.key, OrganisationKey) else None
        self.redis = connect_redis(self.url, socket_connect_timeout=5, socket_timeout=10)
        #: Whether a send without a reply must reach a replica (see :meth:`send`).
        self.confirm_replicas = is_sentinel_url(self.url)
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
        """Enqueue a command without waiting; returns its command id.

        On a Sentinel broker it returns only once a replica holds the command too, since
        no reply will prove it arrived; else :class:`Unavailable` (resending is safe).
        """
        envelope = self.envelope(
            kind, payload, command_id=command_id, correlation_id=correlation_id
        )
        return self.send_envelope(envelope)

    def envelope(
        self,
        kind: CommandKind,
        payload: dict[str, Any],
        *,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        """A signed envelope of this client's organisation, in its key's protocol."""
        if isinstance(self.key, OrganisationKey):
            return new_envelope_v2(
                kind,
                self.key,
                payload,
                command_id=command_id,
                correlation_id=correlation_id,
                caseworker=self.caseworker,
            )
        return new_envelope(
            kind,
            self.principal,
            payload,
            command_id=command_id,
            correlation_id=correlation_id,
            caseworker=self.caseworker,
            key=self.key,
        )

    def send_envelope(self, envelope: Envelope, *, confirm: bool | None = None) -> str:
        """Enqueue an envelope made (and signed) by this client's key; returns its id.

        ``confirm`` (default: on a Sentinel broker) waits until a replica holds it.
        """
        confirm = self.confirm_replicas if confirm is None else confirm
        try:
            self._enqueue([envelope], confirm=confirm)
        except ReplicationUnconfirmed as error:
            self._remember(envelope)
            raise Unavailable(
                f"command {envelope.command_id} reached the broker's master, but no replica "
                f"confirmed it ({error}): a failover now would lose it. Send it again with "
                f"--command-id {envelope.command_id} (safe: it is applied once), and check "
                "the broker's replicas"
            ) from None
        except redis.RedisError as error:
            raise Unavailable(
                f"cannot reach the broker at {redact(self.url)} ({type(error).__name__}); "
                "check that jobordre (or Redis) is running and send the command again with "
                f"--command-id {envelope.command_id} (it may have gone through)"
            ) from None
        self._remember(envelope)
        return envelope.command_id

    def send_many(self, kind: CommandKind, payloads: list[dict[str, Any]]) -> list[str]:
        """Enqueue one command per payload, all in one round trip; their command ids.

        For a caller with a batch of commands at hand (the benchmark's burst): the
        commands are on the queue at once, in order. No replica acknowledgement is awaited.
        """
        envelopes = [self.envelope(kind, payload) for payload in payloads]
        try:
            self._enqueue(envelopes, confirm=False)
        except redis.RedisError as error:
            raise Unavailable(
                f"cannot reach the broker at {redact(self.url)} ({type(error).__name__}); "
                f"none, some or all of the {len(envelopes)} commands may have gone through"
            ) from None
        for envelope in envelopes:
            self._remember(envelope)
        return [envelope.command_id for envelope in envelopes]

    def _enqueue(self, envelopes: list[Envelope], *, confirm: bool) -> None:
        """Put the envelopes' messages on their queues as docs/protocol.md § 2 tells every
        client to (``MULTI``, ``HSET``, ``RPUSH``, ``EXEC``), not with Dramatiq's script:
        that one also beats a heartbeat and may run the queues' maintenance, which a
        client's Redis user is not allowed (``jobordre broker acl``). With ``confirm``,
        then wait (Redis ``WAIT``, on the same connection) until a replica holds them."""
        pipe = self.redis.pipeline(transaction=False)
        enqueue_messages(pipe, [command_message(envelope) for envelope in envelopes])
        if confirm:
            pipe.wait(REPLICA_ACKS, REPLICA_ACK_TIMEOUT_MS)
        replies = pipe.execute()
        if confirm and int(replies[-1]) < REPLICA_ACKS:
            raise ReplicationUnconfirmed(
                f"{replies[-1]} of {REPLICA_ACKS} replicas acknowledged within "
                f"{REPLICA_ACK_TIMEOUT_MS} ms"
            )

    def _remember(self, envelope: Envelope) -> None:
        if envelope.signature is not None:
            self._sent.setdefault(envelope.command_id, []).append(envelope.signature)

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
                principal=self.reply_principal,
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

    def wait_many(
        self, command_ids: Iterable[str], timeout_ms: int | None = None
    ) -> Iterator[tuple[str, dict[str, Any] | JobordreError]]:
        """Each command's result, or the error the worker reported, as its reply arrives.

        For a caller with many commands in flight: one round trip to the broker collects
        every reply that is ready, where :meth:`wait` takes one per command. Yields
        ``(command_id, result)``, or ``(command_id, error)`` for a command the foundation
        refused (a :class:`JobordreError`, as :meth:`wait` would raise it), in the order
        the replies arrive. Commands not answered within ``timeout_ms`` (counted from the
        call) end the iteration with :class:`Unavailable` naming them; resending them
        with their ids is safe.
        """
        timeout = timeout_ms if timeout_ms is not None else self.settings.reply_timeout_ms
        ids = list(dict.fromkeys(command_ids))
        unknown = [command_id for command_id in ids if not self._sent.get(command_id)]
        if unknown:
            raise InvalidInput(
                f"{len(unknown)} of these commands were not sent by this client (the first: "
                f"{unknown[0]}); use `jobordre result` to fetch the stored result of an "
                "earlier command",
                field="command_ids",
            )
        answered: set[str] = set()
        try:
            for command_id, reply in wait_replies(
                self.redis,
                self.settings.redis_prefix,
                ids,
                timeout,
                accept=lambda wire, command_id: self._accept(
                    wire, command_id, self._sent[command_id]
                ),
                principal=self.reply_principal,
            ):
                answered.add(command_id)
                del self._sent[command_id]
                if reply.get("ok"):
                    yield command_id, reply["result"]
                else:
                    yield command_id, JobordreError.from_dict(reply.get("error") or {})
        except redis.RedisError as error:
            left = [command_id for command_id in ids if command_id not in answered]
            raise Unavailable(
                f"lost the broker at {redact(self.url)} while waiting for {len(left)} "
                f"commands ({type(error).__name__}; the first: {left[0]}); resend them with "
                "their command ids to get their results"
            ) from None
        left = [command_id for command_id in ids if command_id not in answered]
        if left:
            raise Unavailable(
                f"no worker answered {len(left)} of {len(ids)} commands within {timeout} ms "
                f"(the first: {left[0]}); is a worker running? Resending them with their "
                "command ids is safe"
            )

    def _accept(
        self, wire: dict[str, Any], command_id: str, signatures: list[str]
    ) -> dict[str, Any] | None:
        """The opened reply if it answers one of this client's sends of ``command_id``.

        Any send's answer is the command's answer (the ledger makes them agree), except a
        ``forbidden`` answer to an earlier send: that one is about the send (expired, say),
        and the latest send will be answered for itself.
        """
        for signature in reversed(signatures):
            reply = (
                open_reply_v2(wire, self.key, command_id, signature)
                if isinstance(self.key, OrganisationKey)
                else open_reply(wire, self.key, command_id, signature)
            )
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
        """Send a command and wait for its result.

        No replica acknowledgement is awaited here: only a worker that applied the command
        answers, so the reply itself proves it; a command a failover lost gets no reply,
        and the wait ends in :class:`Unavailable`.
        """
        envelope = self.envelope(kind, payload, command_id=command_id)
        return self.wait(self.send_envelope(envelope, confirm=False), timeout_ms)

    def close(self) -> None:
        """Close the client's Redis connections."""
        self.redis.close()
