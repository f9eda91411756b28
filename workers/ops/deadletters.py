"""Dead letters for ops people: list, show, retry and purge, every change audited.

A dead letter is a message the workers could not process: ``rejected`` (a validation,
authorisation or state error), ``crashed`` (its retries were spent on infrastructure errors)
or ``undecodable``. The store keeps it with its reason, its traceback and, for retry only,
the message as it arrived (``original``, which may hold a CPR number and is never shown).

Retry puts ``original`` back on its actor's queue as a new Dramatiq message. A rejected
write command sits in the command ledger as ``rejected``, and the ledger answers every
redelivery of a command id from there; so the retry deletes that ledger row in the same
store transaction that marks the letter retried and writes the audit row, and enqueues
before that transaction commits. A worker that picks the message up at once waits on the
write lock, then finds no ledger row and applies the command once. Each letter is one
transaction: a letter that cannot be retried (garbage, an unknown kind, a forged command,
an organisation without a key) is reported with its reason and the others are retried; if
the enqueue fails, that letter and the ones after it stay as they were.

The read-only commands (list, show, audit) and retry and purge open an existing store
only: a wrong ``JOBORDRE_HOME`` or ``JOBORDRE_DB`` is an error, never a new empty store;
so is a PostgreSQL database at ``JOBORDRE_DATABASE_URL`` without jobordre's schema (it is
never migrated into one).
"""

from __future__ import annotations

import getpass
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import redis

from shared import keys, store
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.errors import InvalidInput, JobordreError, Unavailable
from shared.redaction import redact_cpr
from shared.settings import Settings
from shared.store import Store, Tx, open_url
from shared.store.sqlite import SqliteTx
from workers.transport.broker import build_broker, queue_for, redact, resolve_redis_url
from workers.transport.dramatiq_redis import dead_key, dead_messages_key

#: Default of how long after it was sent a dead command may have died and still be retried,
#: in ms: the default signature window (15 min) plus the default retries (6 x 60 s).
RETRY_WINDOW_MS = 15 * 60 * 1000 + 6 * 60 * 1000


@dataclass(frozen=True, slots=True)
class RetryBounds:
    """How old a dead command may be for ``dead retry`` (see :func:`shared.keys.resign`),
    in ms: ``window_ms`` from sent to dead, ``max_age_ms`` (writes) and ``read_window_ms``
    (reads) from sent to the retry."""

    window_ms: int = RETRY_WINDOW_MS
    max_age_ms: int = Settings.model_fields["dead_retry_max_age_ms"].default
    read_window_ms: int = Settings.model_fields["signature_max_age_ms"].default

    @classmethod
    def of(cls, settings: Settings) -> RetryBounds:
        """The bounds the settings give."""
        return cls(
            window_ms=settings.signature_max_age_ms
            + (settings.max_retries + 1) * settings.max_backoff_ms,
            max_age_ms=settings.dead_retry_max_age_ms,
            read_window_ms=settings.signature_max_age_ms,
        )


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
    if given is None:
        try:
            given = getpass.getuser()
        except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (a container)
            raise InvalidInput(
                "--by: your login name is not known on this host; give your operator "
                "name with --by NAME",
                field="by",
            ) from None
    name = given
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


def existing_store(settings: Settings) -> Path:
    """The SQLite store's path, if there is a file there; else :class:`Unavailable` saying
    what to set (nothing is created)."""
    path = settings.db_path
    if not path.is_file():
        raise Unavailable(
            f"no store at {path}: set JOBORDRE_HOME (or JOBORDRE_DB) to the foundation's "
            "data folder; nothing was created"
        )
    return path


def existing_postgres(settings: Settings, *, pool_size: int | None = None) -> Store:
    """The PostgreSQL store at ``JOBORDRE_DATABASE_URL``, if it has jobordre's schema; it
    is never migrated from nothing. ``pool_size`` defaults to ``JOBORDRE_DATABASE_POOL_SIZE``."""
    found = open_url(
        str(settings.database_url),
        pool_size=pool_size or settings.database_pool_size,
        migrate=False,
    )
    if found.schema_version() == 0 or "dead_letters" not in found.tables():
        where = found.describe()
        found.close()
        raise Unavailable(
            f"{where} is not a jobordre store (no schema): fix JOBORDRE_DATABASE_URL, or run "
            "`jobordre migrate` to create one there; nothing was created"
        )
    return found


@contextmanager
def read_only(settings: Settings) -> Iterator[Tx]:
    """A read transaction on the existing store (never created, never migrated)."""
    if settings.database_url:
        found = existing_postgres(settings)
        try:
            with found.read() as tx:
                yield tx
        finally:
            found.close()
        return
    path = existing_store(settings)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error as error:
        raise Unavailable(f"cannot open the store at {path} ({error})") from None
    conn.row_factory = sqlite3.Row
    try:
        if "dead_letters" not in {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }:
            raise Unavailable(
                f"{path} is not a jobordre store (no dead_letters table): set JOBORDRE_HOME "
                "(or JOBORDRE_DB) to the foundation's data folder"
            )
        yield SqliteTx(conn)
    finally:
        conn.close()


def open_store(settings: Settings) -> Store:
    """The existing store, for writing: SQLite at ``JOBORDRE_DB`` if the file is there,
    or PostgreSQL at ``JOBORDRE_DATABASE_URL`` if it has jobordre's schema (then brought
    to this jobordre's version); never a new one."""
    if settings.database_url:
        found = existing_postgres(settings)
        found.migrate()
        return found
    return open_url(existing_store(settings), busy_timeout_ms=settings.sqlite_busy_timeout_ms)


def list_letters(
    settings: Settings, *, limit: int, source: str | None = None, pending: bool = False
) -> list[dict[str, Any]]:
    """Dead letters, newest first, as people may see them."""
    with read_only(settings) as conn:
        letters = store.find_dead_letters(conn, limit=limit, source=source, pending=pending)
    return [_visible(letter) for letter in letters]


def show_letter(settings: Settings, letter_id: int) -> dict[str, Any]:
    """One dead letter with its reason, traceback and masked message."""
    with read_only(settings) as conn:
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


def _plan(
    conn: Tx, letter_id: int, bounds: RetryBounds, at: datetime
) -> tuple[dict[str, Any], dramatiq.Message[Any]]:
    """A letter and the message that retries it; a :class:`JobordreError` saying why it
    cannot be retried."""
    letter = store.dead_letter(conn, letter_id)
    original = store.dead_letter_original(conn, letter_id)
    if original is None:
        raise InvalidInput(
            f"dead letter {letter_id}: the message itself was not kept, so it cannot "
            "be retried; have its sender send it again, then purge this one",
            field="id",
        )
    if letter["kind"] is None:
        raise InvalidInput(
            f"dead letter {letter_id}: it was not a Dramatiq message at all, so there is no "
            "job to give it to; purge it when you are done with it",
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
            window_ms=bounds.window_ms,
            retried_at=at,
            max_age_ms=bounds.max_age_ms,
            read_window_ms=bounds.read_window_ms,
        )
    return letter, _message_for(letter, original)


def retry_letters(
    store_: Store,
    enqueue: Enqueue,
    *,
    ids: Sequence[int] | None,
    operator: str,
    clock: Callable[[], datetime] = utc_now,
    bounds: RetryBounds | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Put dead letters back on their queues; ``ids=None`` retries all not yet retried.

    ``bounds``: how old a command may be to be retried (:class:`RetryBounds`, see
    :func:`shared.keys.resign`); the defaults' when not given.

    One transaction per letter. Returns ``retried`` and ``skipped``: each letter that
    could not be retried with its ``code`` and ``reason`` (unknown, garbage, forged, ...,
    or ``unavailable`` for it and every one after it when the broker failed).
    """
    bounds = bounds or RetryBounds()
    retried: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with store_.read() as conn:
        chosen = list(ids) if ids is not None else store.dead_letters_to_retry(conn)
    for position, letter_id in enumerate(chosen):
        try:
            with store_.write() as conn:
                at = clock()
                letter, message = _plan(conn, letter_id, bounds, at)
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
                # Enqueued last and inside the transaction: if Redis fails, the ledger row
                # and the letter stay as they were.
                enqueue(message)
        except Unavailable as error:
            skipped += [
                {"id": later, "code": error.code, "reason": error.message}
                for later in chosen[position:]
            ]
            break
        except JobordreError as error:
            skipped.append({"id": letter_id, "code": error.code, "reason": error.message})
            continue
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
    return {"retried": retried, "skipped": skipped}


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
    xq = dead_key(namespace, queue)
    for dead_id, raw in client.hscan_iter(dead_messages_key(namespace, queue)):
        try:
            args = json.loads(raw)["args"]
        except (ValueError, KeyError, TypeError):
            continue
        if args and isinstance(args[0], str) and _identity(args[0]) in by_original:
            pipe = client.pipeline(transaction=True)
            pipe.zrem(xq, dead_id)
            pipe.hdel(dead_messages_key(namespace, queue), dead_id)
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


def retry(
    settings: Settings, *, ids: Sequence[int] | None, operator: str
) -> dict[str, list[dict[str, Any]]]:
    """:func:`retry_letters` against the configured store and broker."""
    store_ = open_store(settings)
    url = resolve_redis_url(settings)
    broker = build_broker(settings, url)
    sent: dict[str, dict[str, str]] = {}  # queue -> new message id -> raw message

    def enqueue(message: dramatiq.Message[Any]) -> None:
        try:
            broker.enqueue(message)
        except redis.RedisError as error:
            raise Unavailable(
                f"cannot reach the broker at {redact(url)} ({type(error).__name__}); this "
                "letter was not retried: start Redis or jobordre and retry it again"
            ) from None
        sent.setdefault(message.queue_name, {})[message.message_id] = message.args[0]

    try:
        result = retry_letters(
            store_,
            enqueue,
            ids=ids,
            operator=operator,
            bounds=RetryBounds.of(settings),
        )
        retried = result["retried"]
        removed: dict[str, int] = {}
        try:
            for queue, originals in sent.items():
                removed |= forget_broker_copies(broker.client, broker.namespace, queue, originals)
        except redis.RedisError:
            pass  # the retry stands; the broker's copies expire on their own after 7 days
        for letter in retried:
            letter["broker_copies_removed"] = removed.get(letter["message_id"], 0)
        return result
    finally:
        broker.close()


def purge(
    store_: Store,
    *,
    older_than: timedelta,
    operator: str,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """Delete dead letters older than ``older_than``; the purge itself is audited (the
    workers' own retention only when it deleted something)."""
    at = clock()
    before = at - older_than
    with store_.write() as conn:
        count = store.purge_dead_letters(conn, before)
        if count or operator != RETENTION_OPERATOR:
            store.record_ops_action(
                conn,
                at=at,
                operator=operator,
                action="purge",
                count=count,
                detail=f"dead letters recorded before {before.isoformat()}",
            )
    return {"purged": count, "before": before.isoformat(), "by": operator}


def purge_ids(
    store_: Store,
    ids: Sequence[int],
    *,
    operator: str,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """Delete the dead letters ``ids`` (one audit row each); an unknown id deletes nothing."""
    at = clock()
    with store_.write() as conn:
        for letter_id in ids:
            store.dead_letter(conn, letter_id)  # NotFound before anything is deleted
        for letter_id in dict.fromkeys(ids):
            letter = store.dead_letter(conn, letter_id)
            conn.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
            store.record_ops_action(
                conn,
                at=at,
                operator=operator,
                action="purge",
                dead_letter_id=letter_id,
                count=1,
                detail=f"{letter['source']} {letter['kind'] or '?'} dead letter by id",
            )
    return {"purged": len(dict.fromkeys(ids)), "ids": list(dict.fromkeys(ids)), "by": operator}


def purge_expired(store_: Store, settings: Settings) -> dict[str, Any]:
    """The workers' retention: purge letters older than ``dead_letter_retention_days``."""
    return purge(
        store_,
        older_than=timedelta(days=settings.dead_letter_retention_days),
        operator=RETENTION_OPERATOR,
    )


def audit(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The newest retries and purges first, with who did them."""
    with read_only(settings) as conn:
        return store.ops_audit(conn, limit)
