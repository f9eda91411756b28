"""Dead letters for ops people: list, show, retry and purge, every change audited.

A dead letter is a message the workers could not process: ``rejected`` (a validation,
authorisation or state error), ``crashed`` (its retries were spent on infrastructure errors)
or ``undecodable``. The store keeps it with its reason, its traceback and, for retry only,
the message as it arrived (``original``, which may hold a CPR number and is never shown).

Retry puts ``original`` back on its actor's queue as a new Dramatiq message. A rejected
write command sits in the command ledger as ``rejected``, and the ledger answers every
redelivery of a command id from there; so the retry deletes that ledger row in the same
SQLite transaction that marks the letter retried and writes the audit row, and enqueues
before that transaction commits. A worker that picks the message up at once waits on the
write lock, then finds no ledger row and applies the command once. If the enqueue fails,
nothing changes.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import redis

from shared import keys, store
from shared.commands import CommandKind
from shared.errors import InvalidInput, Unavailable
from shared.foundation import utc_now
from shared.redaction import redact_cpr
from shared.settings import Settings
from shared.store import Store, open_store
from workers.broker import build_broker, queue_for, redact, resolve_redis_url

#: Default of how long after it was sent a dead command may have died and still be retried,
#: in ms: the default signature window (15 min) plus the default retries (6 x 60 s).
RETRY_WINDOW_MS = 15 * 60 * 1000 + 6 * 60 * 1000
#: An operator name as stored in the audit log.
OPERATOR_PATTERN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
#: ``--older-than`` values: a number and a unit (d, h, m, s); a bare number means days.
DURATION_PATTERN = re.compile(r"^(\d+)([dhms]?)$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds", "": "days"}

#: The operator recorded for the workers' own retention purge.
RETENTION_OPERATOR = "retention"

Enqueue = Callable[[dramatiq.Message[Any]], None]


def operator_name(given: str | None) -> str:
    """``--by``, or the login name of whoever runs the command; validated."""
    name = given if given is not None else getpass.getuser()
    if not OPERATOR_PATTERN.match(name):
        raise InvalidInput(
            "--by: give your operator name: 1-64 letters, digits or _.@-", field="by"
        )
    return name


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``90`` (days) as a :class:`timedelta`."""
    match = DURATION_PATTERN.match(text.strip())
    if match is None:
        raise InvalidInput(
            f"--older-than: {text!r} is not a duration; write e.g. 90d, 12h, 30m or 45s",
            field="older_than",
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _visible(letter: dict[str, Any]) -> dict[str, Any]:
    # The stored texts are masked when written; blanking CPR-shaped numbers again on the
    # way out keeps a slip elsewhere from reaching a terminal.
    return {k: redact_cpr(v) if isinstance(v, str) else v for k, v in letter.items()}


def list_letters(
    settings: Settings, *, limit: int, source: str | None = None, pending: bool = False
) -> list[dict[str, Any]]:
    """Dead letters, newest first, as people may see them."""
    with open_store(settings).read() as conn:
        letters = store.find_dead_letters(conn, limit=limit, source=source, pending=pending)
    return [_visible(letter) for letter in letters]


def show_letter(settings: Settings, letter_id: int) -> dict[str, Any]:
    """One dead letter with its reason, traceback and masked message."""
    with open_store(settings).read() as conn:
        return _visible(store.dead_letter(conn, letter_id))


def _message_for(letter: dict[str, Any], original: str) -> dramatiq.Message[Any]:
    try:
        kind = CommandKind(letter["kind"])
    except ValueError:
        raise InvalidInput(
            f"dead letter {letter['id']}: its job kind {letter['kind']!r} is unknown to this "
            "jobordre, so it cannot be retried; purge it when you are done with it",
            field="id",
        ) from None
    return dramatiq.Message(
        queue_name=queue_for(kind),
        actor_name=kind.value,
        args=(original,),
        kwargs={},
        options={},
    )


def retry_letters(
    store_: Store,
    enqueue: Enqueue,
    *,
    ids: Sequence[int] | None,
    operator: str,
    clock: Callable[[], datetime] = utc_now,
    window_ms: int = RETRY_WINDOW_MS,
) -> list[dict[str, Any]]:
    """Put dead letters back on their queues; ``ids=None`` retries all not yet retried.

    ``window_ms``: how long after it was sent a command may have died and still be retried
    (the signature window plus the time its retries took; see :func:`shared.keys.resign`).

    All or nothing: an unknown id or a letter without its raw message changes nothing.
    """
    retried: list[dict[str, Any]] = []
    with store_.write() as conn:
        chosen = list(ids) if ids is not None else store.dead_letters_to_retry(conn)
        at = clock()
        # Every letter is checked before anything is sent, so a bad id sends nothing.
        planned: list[tuple[dict[str, Any], dramatiq.Message[Any]]] = []
        for letter_id in chosen:
            letter = store.dead_letter(conn, letter_id)
            original = store.dead_letter_original(conn, letter_id)
            if original is None:
                raise InvalidInput(
                    f"dead letter {letter_id}: the message itself was not kept, so it cannot "
                    "be retried; have its sender send it again",
                    field="id",
                )
            if letter["kind"] in {kind.value for kind in CommandKind}:
                # Past the signature window it would be refused as expired: sign it anew.
                original = keys.resign(
                    conn,
                    original,
                    source=letter["source"],
                    code=letter["code"],
                    died_at=datetime.fromisoformat(letter["at"]),
                    window_ms=window_ms,
                )
            planned.append((letter, _message_for(letter, original)))
        for letter, message in planned:
            cleared = (
                letter["command_id"] is not None
                and letter["principal"] is not None
                and store.forget_rejection(conn, letter["principal"], letter["command_id"])
            )
            store.mark_dead_letter_retried(conn, letter["id"], at, operator)
            store.record_ops_action(
                conn,
                at=at,
                operator=operator,
                action="retry",
                dead_letter_id=letter["id"],
                count=1,
                detail=f"{letter['source']} {letter['kind']} to {message.queue_name}"
                + ("; rejection cleared from the ledger" if cleared else ""),
            )
            retried.append(
                {
                    "id": letter["id"],
                    "kind": letter["kind"],
                    "command_id": letter["command_id"],
                    "queue": message.queue_name,
                    "ledger_cleared": cleared,
                    "message_id": message.message_id,
                    "retried_before": letter["retried_at"] is not None,
                }
            )
        # Enqueued last and inside the transaction: if Redis fails, the ledger rows and
        # the letters stay as they were (a message already sent then finds its rejection
        # in the ledger and is answered with it, changing nothing).
        for _, message in planned:
            enqueue(message)
    return retried


def forget_broker_copies(
    client: redis.Redis, namespace: str, queue: str, originals: dict[str, str]
) -> dict[str, int]:
    """Drop from Dramatiq's dead-letter set of ``queue`` the copies of retried messages.

    A crashed message is kept twice: in the store and in ``<queue>.XQ``. Once it is retried,
    the broker's copy would only inflate the dead count in ``jobordre queues``.
    ``originals`` maps each retried letter's new message id to its raw message; returns how
    many copies were dropped per new message id. A copy is the same command (its command
    id; a retry re-signs it) or, for what is not a command, the same raw message.
    """
    by_original = {_identity(original): message_id for message_id, original in originals.items()}
    removed = dict.fromkeys(originals, 0)
    xq = f"{namespace}:{queue}.XQ"
    for dead_id, raw in client.hscan_iter(f"{xq}.msgs"):
        try:
            args = json.loads(raw)["args"]
        except (ValueError, KeyError, TypeError):
            continue
        if args and isinstance(args[0], str) and _identity(args[0]) in by_original:
            pipe = client.pipeline(transaction=True)
            pipe.zrem(xq, dead_id)
            pipe.hdel(f"{xq}.msgs", dead_id)
            pipe.execute()
            removed[by_original[_identity(args[0])]] += 1
    return removed


def _identity(raw: str) -> str:
    """What makes two kept messages the same command: its command id, else the raw text."""
    try:
        command_id = json.loads(raw).get("command_id")
    except (ValueError, AttributeError):
        return raw
    return f"command:{command_id}" if isinstance(command_id, str) else raw


def retry(settings: Settings, *, ids: Sequence[int] | None, operator: str) -> list[dict[str, Any]]:
    """:func:`retry_letters` against the configured store and broker."""
    url = resolve_redis_url(settings)
    broker = build_broker(settings, url)
    sent: dict[str, dict[str, str]] = {}  # queue -> new message id -> raw message

    def enqueue(message: dramatiq.Message[Any]) -> None:
        try:
            broker.enqueue(message)
        except redis.RedisError as error:
            raise Unavailable(
                f"cannot reach the broker at {redact(url)} ({type(error).__name__}); nothing "
                "was retried: start Redis or jobordre and retry again"
            ) from None
        sent.setdefault(message.queue_name, {})[message.message_id] = message.args[0]

    try:
        retried = retry_letters(
            open_store(settings),
            enqueue,
            ids=ids,
            operator=operator,
            window_ms=settings.signature_max_age_ms
            + (settings.max_retries + 1) * settings.max_backoff_ms,
        )
        removed: dict[str, int] = {}
        try:
            for queue, originals in sent.items():
                removed |= forget_broker_copies(broker.client, broker.namespace, queue, originals)
        except redis.RedisError:
            pass  # the retry stands; the broker's copies expire on their own after 7 days
        for letter in retried:
            letter["broker_copies_removed"] = removed.get(letter["message_id"], 0)
        return retried
    finally:
        broker.close()


def purge(
    store_: Store,
    *,
    older_than: timedelta,
    operator: str,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """Delete dead letters older than ``older_than``; the purge itself is audited."""
    at = clock()
    before = at - older_than
    with store_.write() as conn:
        count = store.purge_dead_letters(conn, before)
        store.record_ops_action(
            conn,
            at=at,
            operator=operator,
            action="purge",
            count=count,
            detail=f"dead letters recorded before {before.isoformat()}",
        )
    return {"purged": count, "before": before.isoformat(), "by": operator}


def purge_expired(store_: Store, settings: Settings) -> dict[str, Any]:
    """The workers' retention: purge letters older than ``dead_letter_retention_days``."""
    return purge(
        store_,
        older_than=timedelta(days=settings.dead_letter_retention_days),
        operator=RETENTION_OPERATOR,
    )


def audit(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The newest retries and purges first, with who did them."""
    with open_store(settings).read() as conn:
        return store.ops_audit(conn, limit)
