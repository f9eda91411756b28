"""The relay against a real redis-server: headers on the stream, and the event log's
identity kept across a store restored from a backup."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shared import eventlog
from shared.commands import CommandKind
from shared.events import Cursor, parse_entry
from shared.foundation import Foundation
from shared.settings import Settings
from shared.store import SqliteStore as Store
from tests.conftest import RedisServer
from tests.shared.test_foundation import JOBCENTRE, ok, register
from workers.worker.relay import Relay, events_stream_key

pytestmark = pytest.mark.integration


def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, redis_prefix="relay-test")


def status_changes(f: Foundation, order_id: int, count: int) -> None:
    """``count`` status changes: the order inactivated, then reactivated, and so on."""
    for _ in range(count):
        order = ok(f, JOBCENTRE, CommandKind.GET_ORDER, {"order_id": order_id})
        status = "processing" if order["status"] == "inactivated" else "inactivated"
        ok(f, JOBCENTRE, CommandKind.CHANGE_ORDER_STATUS, {"order_id": order_id, "status": status})


def pushed(server: RedisServer, s: Settings) -> list[tuple[int, str]]:
    entries: Any = server.client().xrange(events_stream_key(s))
    headers = [parse_entry(fields) for _, fields in entries]
    return [(h.seq, h.epoch) for h in headers if h is not None]


def backup(db: Path, to: Path) -> None:
    """An online backup, as an operator would take one (sqlite3's backup API)."""
    source, target = sqlite3.connect(db), sqlite3.connect(to)
    source.backup(target)
    source.close()
    target.close()


def restore(db: Path, from_backup: Path) -> Foundation:
    """The store at ``db`` replaced by its backup, as an operator restores one."""
    shutil.copy(from_backup, db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return Foundation(Store(db))


def restored_after_losing_published_events(
    server: RedisServer, tmp_path: Path, kept: int, lost: int
) -> tuple[Settings, Foundation, Relay, int, str]:
    """An order and ``kept`` status changes, a backup, ``lost`` more status changes
    published by a relay; then the store restored from the backup, and a relay on it that
    checked the log's identity as a worker does before its first job. Returns the
    settings, the restored foundation, its relay, the order's id and the old epoch."""
    s = settings(tmp_path)
    db = tmp_path / "store.db"
    f = Foundation(Store(db))
    order = register(f)
    status_changes(f, order["id"], kept)
    backup(db, tmp_path / "backup.db")
    status_changes(f, order["id"], lost)
    Relay(f.store, server.client(), s).flush()
    with f.store.read() as conn:
        old = eventlog.current_epoch(conn)
    f.store.close()
    restored = restore(db, tmp_path / "backup.db")
    relay = Relay(restored.store, server.client(), s)
    relay.check_identity()
    return s, restored, relay, int(order["id"]), old


@pytest.mark.parametrize(
    "shared_transactions",
    [
        pytest.param(False, id="mark-in-a-transaction-of-its-own"),
        pytest.param(True, id="mark-in-the-group-commit"),
    ],
)
def test_every_header_names_the_log_it_belongs_to(
    private_redis: RedisServer, tmp_path: Path, shared_transactions: bool
) -> None:
    s = settings(tmp_path)
    f = Foundation(Store(tmp_path / "store.db"))
    register(f)
    writes = f.writes if shared_transactions else None
    Relay(f.store, private_redis.client(), s, writes=writes).flush()
    with f.store.read() as conn:
        epoch = eventlog.current_epoch(conn)
        assert (eventlog.pushed_upto(conn), eventlog.backlog(conn)) == (1, (0, None))
    assert pushed(private_redis, s) == [(1, epoch)]
    if shared_transactions:
        assert (f.writes.batches, f.writes.writes) == (2, 2), "the order, then the mark"


def test_a_store_restored_from_a_backup_starts_a_new_epoch(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    # Events 1-6 kept by the backup, 7-10 published, then lost.
    s, restored, relay, order_id, old = restored_after_losing_published_events(
        private_redis, tmp_path, kept=5, lost=4
    )
    seen = str(Cursor(10, old))  # a reader who saw everything
    status_changes(restored, order_id, 1)  # event 7 again, of another history
    relay.flush()

    with restored.store.read() as conn:
        new = eventlog.current_epoch(conn)
    assert new != old
    assert pushed(private_redis, s)[-1] == (7, new)
    page = ok(restored, JOBCENTRE, CommandKind.INBOX, {"since": seen, "headers_only": True})
    assert page["from_seq"] == 6  # where the two histories part
    assert [(e["seq"], e["epoch"]) for e in page["events"]] == [(7, new)]
    assert page["cursor"] == f"{new}:7"
    # A second relay (another worker process) starting on the restored store agrees.
    assert Relay(restored.store, private_redis.client(), s).check_identity() is None


def test_a_store_ahead_of_redis_keeps_its_epoch(private_redis: RedisServer, tmp_path: Path) -> None:
    s = settings(tmp_path)
    f = Foundation(Store(tmp_path / "store.db"))
    order = register(f)
    Relay(f.store, private_redis.client(), s).flush()
    status_changes(f, order["id"], 3)  # not pushed yet: Redis is behind, which is normal
    relay = Relay(f.store, private_redis.client(), s)
    assert relay.check_identity() is None
    with f.store.read() as conn:
        assert len(eventlog.epochs(conn)) == 1


def test_two_relays_racing_push_each_event_once(private_redis: RedisServer, tmp_path: Path) -> None:
    # Each worker process has a relay, and each pushes every event above the store's mark.
    # The one that comes second, having read the same events before the first raised the
    # mark, must not put them on the stream again.
    s = settings(tmp_path)
    f = Foundation(Store(tmp_path / "store.db"))
    order = register(f)
    status_changes(f, order["id"], 4)  # events 1-5
    first, second = (Relay(f.store, private_redis.client(), s) for _ in range(2))
    first.flush()
    with f.store.write() as conn:
        # As if the second had read its batch before the first raised the mark.
        conn.execute("UPDATE relay_mark SET pushed_seq = 0")
    second.flush()
    status_changes(f, order["id"], 2)  # events 6-7
    second.flush()
    first.flush()
    with f.store.read() as conn:
        epoch = eventlog.current_epoch(conn)
    assert pushed(private_redis, s) == [(seq, epoch) for seq in range(1, 8)]


def test_headers_of_an_earlier_epoch_are_never_skipped(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    # A restored store's old events still waiting go out under their own epoch, however
    # far the new epoch's published seq has come.
    # Events 1-3 not pushed before the backup, 4-6 published, then lost.
    s, restored, relay, order_id, old = restored_after_losing_published_events(
        private_redis, tmp_path, kept=2, lost=3
    )
    status_changes(restored, order_id, 4)  # events 4-7 of the new epoch
    relay.flush()
    with restored.store.read() as conn:
        new = eventlog.current_epoch(conn)
    stream = pushed(private_redis, s)
    assert stream[6:] == [(1, old), (2, old), (3, old), (4, new), (5, new), (6, new), (7, new)]
    with restored.store.write() as conn:
        conn.execute("UPDATE relay_mark SET pushed_seq = 0")  # everything read once more
    relay.flush()
    # The old epoch's headers again (at least once), none of the new one's twice.
    assert pushed(private_redis, s)[len(stream) :] == [(1, old), (2, old), (3, old)]
