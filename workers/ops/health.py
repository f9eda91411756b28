"""``jobordre health``: one yes/no for systemd, Kubernetes or a load balancer.

Four checks, each with a detail that says what to do when it fails:

- broker: Redis answers PING;
- store: the SQLite file exists, or PostgreSQL at ``JOBORDRE_DATABASE_URL`` answers; it
  is a jobordre store (it has a schema version: an empty file left by a mistyped
  ``JOBORDRE_HOME`` is not) and the write lock can be taken (then released unused); the
  detail names the engine;
- workers: at least ``min_workers`` registered workers beat within the heartbeat timeout;
- outbox: no event has waited for the relay longer than ``outbox_max_age_s`` (a store
  without an outbox table passes, saying so).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis

from shared import eventlog
from shared.errors import Unavailable
from shared.settings import Settings
from shared.store import Tx
from shared.store.sqlite import SqliteTx
from workers.ops.queues import broker_snapshot
from workers.transport.broker import redact, resolve_redis_url
from workers.transport.redis_connection import connect_redis

#: How long the store check waits for the write lock, in milliseconds.
STORE_LOCK_WAIT_MS = 2_000


@dataclass(frozen=True)
class Check:
    """One check's verdict."""

    name: str
    ok: bool
    detail: str


def _broker(client: redis.Redis, url: str) -> Check:
    try:
        client.ping()
    except redis.RedisError as error:
        return Check(
            "broker",
            False,
            f"Redis at {redact(url)} does not answer ({type(error).__name__}): start it, "
            "or fix JOBORDRE_REDIS_URL",
        )
    return Check("broker", True, f"Redis at {redact(url)} answers")


def _postgres(settings: Settings) -> Check:
    from shared.store.postgres import PostgresStore  # only processes that use it load psycopg

    url = str(settings.database_url)
    try:
        store = PostgresStore(url, pool_size=1, migrate=False)
    except Unavailable as error:
        return Check("store", False, error.message)
    where = store.describe()
    try:
        store.check_writable(STORE_LOCK_WAIT_MS)
        version = store.schema_version()
    except Unavailable as error:
        return Check("store", False, f"postgres store {where}: {error.message}")
    finally:
        store.close()
    if version == 0:
        return Check(
            "store",
            False,
            f"postgres store {where} is not a jobordre store (no schema): fix "
            "JOBORDRE_DATABASE_URL, or run `jobordre migrate`",
        )
    return Check("store", True, f"postgres store {where} is writable, schema version {version}")


def _store(settings: Settings) -> Check:
    if settings.database_url:
        return _postgres(settings)
    path = settings.db_path
    if not path.exists():
        return Check("store", False, f"no store at {path}: start a worker once, or fix JOBORDRE_DB")
    try:
        conn = sqlite3.connect(path, timeout=STORE_LOCK_WAIT_MS / 1000, isolation_level=None)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as error:
        return Check(
            "store",
            False,
            f"cannot write {path} ({error}): check the disk, its permissions, and for a "
            f"process holding the write lock longer than {STORE_LOCK_WAIT_MS} ms",
        )
    if version == 0:
        return Check(
            "store",
            False,
            f"{path} is not a jobordre store (no schema): set JOBORDRE_HOME (or JOBORDRE_DB) "
            "to the foundation's data folder",
        )
    return Check("store", True, f"sqlite store {path} is writable")


def _workers(client: redis.Redis, settings: Settings, min_workers: int) -> Check:
    try:
        workers = broker_snapshot(client, settings)["workers"]
    except redis.RedisError:
        return Check("workers", False, "cannot list workers without the broker")
    alive = [w for w in workers if w["alive"]]
    detail = f"{len(alive)} alive of {len(workers)} registered (need {min_workers})"
    hosts = sorted({w["host"] for w in workers})
    if hosts:  # every host's workers, so a host that lost its workers stands out
        per_host = (
            f"{h} {sum(w['host'] == h for w in alive)}/{sum(w['host'] == h for w in workers)}"
            for h in hosts
        )
        detail += f" [alive per host: {', '.join(per_host)}]"
    if len(alive) < min_workers:
        return Check("workers", False, detail + ": start workers with `jobordre worker`")
    return Check("workers", True, detail)


@contextmanager
def _outbox_reader(settings: Settings) -> Iterator[Tx]:
    """A read transaction on the store as it is: never created, never migrated, and (unlike
    the dead-letter commands' reader) without asking for jobordre's tables, since a store
    from before the outbox is fine here."""
    if settings.database_url:
        from shared.store.postgres import PostgresStore

        store = PostgresStore(str(settings.database_url), pool_size=1, migrate=False)
        try:
            with store.read() as tx:
                yield tx
        finally:
            store.close()
        return
    conn = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True, timeout=2)
    conn.row_factory = sqlite3.Row  # as the store's own connections: rows by column name
    try:
        yield SqliteTx(conn)
    finally:
        conn.close()


def _outbox(settings: Settings, max_age_s: float) -> Check:
    if not settings.database_url and not settings.db_path.exists():
        return Check("outbox", False, "no store to read the outbox from")
    try:
        with _outbox_reader(settings) as tx:
            # The same question to either engine: a database without jobordre's schema
            # has no outbox, as an empty SQLite file has none.
            if not tx.columns("events"):
                return Check("outbox", True, "this store has no outbox yet; nothing to check")
            waiting, oldest = eventlog.backlog(tx)
    except Unavailable as error:
        return Check("outbox", False, f"cannot read the outbox ({error.message})")
    except sqlite3.Error as error:
        return Check("outbox", False, f"cannot read the outbox ({error})")
    return _outbox_age(waiting, oldest, max_age_s)


def _outbox_age(waiting: int, oldest: str | None, max_age_s: float) -> Check:
    if oldest is None:
        return Check("outbox", True, "empty")
    age_s = max(time.time() - datetime.fromisoformat(oldest).timestamp(), 0.0)
    detail = f"{waiting} events wait; the oldest for {age_s:.0f} s (limit {max_age_s:.0f} s)"
    if age_s > max_age_s:
        return Check("outbox", False, detail + ": are workers running and Redis reachable?")
    return Check("outbox", True, detail)


def health(settings: Settings, *, min_workers: int, outbox_max_age_s: float) -> dict[str, Any]:
    """Run every check; ``healthy`` only if all pass."""
    try:
        url: str | None = resolve_redis_url(settings)
    except Unavailable as error:
        url, broker = None, Check("broker", False, error.message)
    checks: list[Check] = []
    if url is None:
        checks += [broker, _store(settings)]
        checks.append(Check("workers", False, "cannot list workers without the broker"))
    else:
        client = connect_redis(url, socket_connect_timeout=2, socket_timeout=5)
        try:
            checks += [_broker(client, url), _store(settings)]
            checks.append(_workers(client, settings, min_workers))
        finally:
            client.close()
    checks.append(_outbox(settings, outbox_max_age_s))
    return {
        "healthy": all(c.ok for c in checks),
        "store_engine": "postgres" if settings.database_url else "sqlite",
        "checks": [asdict(c) for c in checks],
    }
