"""The store contract, on both engines: migrations, one writer in commit order, optimistic
versions across hosts, infrastructure failures as ``unavailable``, and the verified copy."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared import eventlog
from shared.commands import CommandKind
from shared.errors import InvalidInput, Unavailable
from shared.events import Cursor
from shared.foundation import Foundation
from shared.store import SqliteStore, Store, open_url, postgres_schema, sqlite_schema
from shared.store.copy import copy_store, table_summary
from shared.store.sqlite_schema import SCHEMA_VERSION
from tests.factories import CPR_1, CPR_2
from tests.shared.test_foundation import JOBCENTRE, call, ok, register

K = CommandKind


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]
)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store of each engine can be made: nothing migrated there yet."""
    if request.param == "sqlite":
        return str(tmp_path / "new.db")
    return str(request.getfixturevalue("postgres_cluster").fresh_database(migrated=False))


def _hosts(url: str, count: int) -> list[Store]:
    """``count`` stores on one database, each with its own connections: several hosts."""
    return [open_url(url) for _ in range(count)]


def _close(stores: list[Store]) -> None:
    for opened in stores:
        opened.close()


def test_migrations_are_numbered_alike_and_run_once(empty_url: str) -> None:
    first = open_url(empty_url)
    try:
        assert first.schema_version() == SCHEMA_VERSION
        assert first.migrate() == SCHEMA_VERSION, "a second run has nothing to do"
        assert "orders" in first.tables()
        assert "commands" in first.tables()
    finally:
        first.close()


#: The first 16 hex digits of the SHA-256 of each released PostgreSQL migration's SQL: a
#: database past a migration never runs it again, so changing one's text would leave
#: databases that ran the old one different from new ones. A change is a new migration.
RELEASED_POSTGRES_MIGRATIONS = [
    "581dd4a071d77bfb",  # 1
    "7db43ce4c4fa0a4d",  # 2
    "f244e2faca95d69d",  # 3
    "e004ebd5b5532a4b",  # 4
    "ca7189f85c39f760",  # 5
    "7e6bc6ab96852c1f",  # 6
    "e004ebd5b5532a4b",  # 7
    "e004ebd5b5532a4b",  # 8
    "c3b401de0fbfdf0c",  # 9
    "e004ebd5b5532a4b",  # 10
    "e004ebd5b5532a4b",  # 11
    "be291fff86ee5336",  # 12
    "3e481faf842c1caa",  # 13
    "78ece7a279214c20",  # 14
    "9e4ddf0a9ad4d977",  # 15
    "0c15067e93c52716",  # 16
    "ac292d3ac9301390",  # 17
    "16c8f251700aca6b",  # 18
]


def test_released_postgres_migrations_keep_their_text() -> None:
    released = [hashlib.sha256(sql.encode()).hexdigest()[:16] for sql in postgres_schema.MIGRATIONS]
    assert released[: len(RELEASED_POSTGRES_MIGRATIONS)] == RELEASED_POSTGRES_MIGRATIONS
    assert len(released) == len(RELEASED_POSTGRES_MIGRATIONS), (
        "a new migration: add its digest to RELEASED_POSTGRES_MIGRATIONS"
    )


def test_several_hosts_starting_at_once_migrate_one_after_the_other(empty_url: str) -> None:
    errors: list[BaseException] = []
    opened: list[Store] = []
    start = threading.Barrier(4)

    def host() -> None:
        start.wait()
        try:
            opened.append(open_url(empty_url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=host) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        assert [s.schema_version() for s in opened] == [SCHEMA_VERSION] * 4
    finally:
        _close(opened)


def _open_at_once(path: Path, threads: int) -> tuple[list[Store], list[BaseException]]:
    """``threads`` threads open a connection to ``path`` at the same moment."""
    start = threading.Barrier(threads)
    errors: list[BaseException] = []
    opened: list[Store] = []

    def connect() -> None:
        start.wait()
        try:
            store = SqliteStore(path, migrate=False)
            opened.append(store)
            store.connection()
        except BaseException as error:
            errors.append(error)

    running = [threading.Thread(target=connect) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(60)
    return opened, errors


def test_connections_racing_to_switch_a_new_sqlite_file_to_wal_all_succeed(
    tmp_path: Path,
) -> None:
    # SQLite answers the loser of that race "database is locked" without waiting; one new
    # file in ten failed this way when tried once. Thirty new files make it show.
    for attempt in range(30):
        opened, errors = _open_at_once(tmp_path / f"new-{attempt}.db", 4)
        try:
            assert errors == [], f"new file {attempt}"
            mode = opened[0].connection().execute("PRAGMA journal_mode").fetchone()[0]
            assert mode == "wal"
        finally:
            _close(opened)


def test_a_failed_write_leaves_nothing(any_store: Store) -> None:
    foundation = Foundation(any_store)
    register(foundation)

    def fail_half_way() -> None:
        with any_store.write() as tx:
            tx.execute("DELETE FROM orders")
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        fail_half_way()
    assert any_store.connection().execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 1


def indexes_holding(store: Store, column: str) -> set[str]:
    """The names of the ``orders`` indexes that ``column`` is a key of."""
    conn = store.connection()
    if store.engine == "sqlite":
        names = [row[0] for row in conn.execute("SELECT name FROM pragma_index_list('orders')")]
        return {
            name
            for name in names
            if column
            in {row[0] for row in conn.execute(f"SELECT name FROM pragma_index_info('{name}')")}
        }
    rows = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'orders'")
    return {str(name) for name, definition in rows if column in str(definition).split("(", 1)[1]}


def test_a_status_change_moves_an_order_in_two_indexes_only(any_store: Store) -> None:
    # Each index holding the status is two more pages written per status change, under
    # the write lock (README, "Round eight"): the employer's index no longer does.
    assert indexes_holding(any_store, "status") == {"orders_by_municipality", "orders_by_deadline"}
    assert indexes_holding(any_store, "employer_cvr") == {"orders_of_employer"}


def test_the_event_log_has_epochs_in_order_on_both_engines(any_store: Store) -> None:
    """Migration 6 gives a new store its first epoch; later ones are ordered by ``ordinal``
    even when they share a base seq, and cursors resolve the same on both engines."""
    foundation = Foundation(any_store)
    with any_store.read() as tx:
        [(first, base)] = eventlog.epochs(tx)
        assert (base, tx.last_event_seq()) == (0, 0)
    register(foundation)
    register(foundation)
    with any_store.write() as tx:
        assert (tx.last_event_seq(), tx.next_event_seq()) == (2, 3)
        second = eventlog.start_epoch(tx, "2026-12-01T00:00:00+00:00", replacing=first)
        assert eventlog.start_epoch(tx, "2026-12-01T00:00:00+00:00", replacing=first) is None
        third = eventlog.start_epoch(tx, "2026-12-01T00:00:00+00:00", replacing=str(second))
    with any_store.read() as tx:
        assert eventlog.epochs(tx) == [(first, 0), (second, 2), (third, 2)]
        assert eventlog.head(tx) == Cursor(2, third)
        assert eventlog.resolve(tx, Cursor(9, first)) == 2, "up to where it ended"
        assert eventlog.resolve(tx, Cursor(1, third)) == 1
        assert eventlog.resolve(tx, Cursor(1, "abcdef")) == 0, "another log counts for nothing"
    register(foundation)
    header = any_store.connection().execute("SELECT header FROM events WHERE seq = 3")
    assert f'"epoch":"{third}"' in header.fetchone()[0]


def test_event_seq_is_gap_free_in_commit_order_across_hosts(store_url: str) -> None:
    """A reader polling the outbox, as the relay and every consumer does, must never see a
    seq commit after a higher one: what it sees is always 1..n without holes."""
    hosts = _hosts(store_url, 3)
    foundations = [Foundation(opened) for opened in hosts]
    stop = threading.Event()
    seen_holes: list[list[int]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        conn = hosts[0].connection()
        while not stop.is_set():
            seqs = [int(r[0]) for r in conn.execute("SELECT seq FROM events ORDER BY seq")]
            if seqs != list(range(1, len(seqs) + 1)):
                seen_holes.append(seqs)

    def writer(foundation: Foundation) -> None:
        try:
            for _ in range(15):
                register(foundation)
        except BaseException as error:
            errors.append(error)

    watching = threading.Thread(target=reader)
    watching.start()
    writers = [threading.Thread(target=writer, args=(f,)) for f in foundations for _ in range(2)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(120)
    stop.set()
    watching.join(10)
    try:
        assert errors == []
        assert seen_holes == []
        seqs = [int(r[0]) for r in hosts[1].connection().execute("SELECT seq FROM events")]
        assert sorted(seqs) == list(range(1, 91))
    finally:
        _close(hosts)


def test_one_of_two_hosts_racing_on_a_version_gets_version_conflict(store_url: str) -> None:
    hosts = _hosts(store_url, 2)
    foundations = [Foundation(opened) for opened in hosts]
    try:
        order = register(foundations[0])
        start = threading.Barrier(2)
        replies: list[dict[str, Any]] = []

        def change(foundation: Foundation, title: str) -> None:
            start.wait()
            payload = {"order_id": order["id"], "expected_version": 1, "patch": {"title": title}}
            replies.append(call(foundation, JOBCENTRE, K.UPDATE_ORDER, payload))

        threads = [
            threading.Thread(target=change, args=(foundations[0], "Murer")),
            threading.Thread(target=change, args=(foundations[1], "Maler")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        outcomes = sorted("ok" if reply["ok"] else reply["error"]["code"] for reply in replies)
        assert outcomes == ["ok", "version_conflict"]
        final = ok(foundations[1], JOBCENTRE, K.GET_ORDER, {"order_id": order["id"]})
        assert final["version"] == 2
    finally:
        _close(hosts)


@pytest.mark.postgres
def test_a_dropped_connection_is_unavailable_and_the_next_write_works(
    postgres_cluster: Any,
) -> None:
    url = postgres_cluster.fresh_database()
    opened = open_url(url)
    try:

        def lose_the_connection() -> None:
            with opened.write() as tx:
                pid = tx.execute("SELECT pg_backend_pid()").fetchone()[0]
                with psycopg.connect(url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                tx.execute("SELECT 1")

        with pytest.raises(Unavailable, match="retried"):
            lose_the_connection()
        foundation = Foundation(opened)
        assert register(foundation)["version"] == 1, "the pool replaced the dead connection"
    finally:
        opened.close()


@pytest.mark.postgres
def test_an_unreachable_database_is_unavailable_saying_what_to_fix(
    postgres_cluster: Any,
) -> None:
    url = postgres_cluster.url("no_such_database")
    with pytest.raises(Unavailable, match="JOBORDRE_DATABASE_URL") as raised:
        open_url(url)
    assert "jobordre:jobordre@" not in str(raised.value), "the password is never shown"


@pytest.fixture
def filled_sqlite(tmp_path: Path) -> Iterator[SqliteStore]:
    """A SQLite store with something in every table a command writes."""
    source = SqliteStore(tmp_path / "source.db")
    foundation = Foundation(source)
    order = register(foundation)
    register(foundation, title="Tømrer til Aarhus")
    placement = ok(
        foundation,
        JOBCENTRE,
        K.REGISTER_PLACEMENT,
        {"order_id": order["id"], "cpr": CPR_1, "referral": True, "note": "godt match"},
    )
    ok(
        foundation,
        JOBCENTRE,
        K.CHANGE_PLACEMENT_STATUS,
        {"order_id": order["id"], "placement_id": placement["id"], "status": "interview"},
    )
    ok(foundation, JOBCENTRE, K.FOLLOW, {"caseworker": "anne", "order_id": order["id"]})
    assert not call(foundation, JOBCENTRE, K.GET_ORDER, {"order_id": "x"})["ok"]  # dead letter
    with source.write() as tx:  # a relay pushed the first two events
        eventlog.mark_pushed(tx, 2)
    yield source
    source.close()


@pytest.mark.postgres
def test_copy_to_postgres_is_verified_and_the_copy_works_on(
    filled_sqlite: SqliteStore, postgres_cluster: Any
) -> None:
    target = open_url(postgres_cluster.fresh_database())
    try:
        report = copy_store(filled_sqlite, target)
        for table in ("orders", "placements", "placement_log", "events", "commands", "follows"):
            assert report[table]["rows"] > 0, table
        with target.read() as tx:
            columns = tx.columns("placement_log")
            assert table_summary(tx, "placement_log", columns) == {
                key: report["placement_log"][key] for key in ("rows", "checksum")
            }
        moved = Foundation(target)
        order_id = target.connection().execute("SELECT MIN(id) FROM orders").fetchone()[0]
        placement = ok(moved, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order_id, "cpr": CPR_2})
        assert placement["id"] == 2, "ids go on after the copied ones"
        log = ok(moved, JOBCENTRE, K.PLACEMENT_LOG, {"order_id": order_id})
        assert [e["to_status"] for e in log["entries"]] == ["placed", "interview", "placed"]
        found = ok(moved, JOBCENTRE, K.SEARCH_ORDERS, {"text": "tømr"})
        assert [o["title"] for o in found["results"]] == ["Tømrer til Aarhus"]
        seqs = [r[0] for r in target.connection().execute("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)), "seq goes on without a gap"
        with filled_sqlite.read() as before, target.read() as after:
            assert eventlog.epochs(after) == eventlog.epochs(before), (
                "the copy keeps the log's identity: readers' cursors stay valid"
            )
            assert eventlog.pushed_upto(after) == eventlog.pushed_upto(before) == 2, (
                "the copy's relay goes on where the source's stopped"
            )
        with pytest.raises(InvalidInput, match="not empty"):
            copy_store(filled_sqlite, target)
    finally:
        target.close()


def test_a_sqlite_store_of_the_first_v6_gets_its_epochs_numbered(tmp_path: Path) -> None:
    """Main's first v6 had no ``ordinal`` and ordered epochs by rowid; v7 numbers them so."""
    path = tmp_path / "v6.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            DROP TABLE event_log_epochs;
            CREATE TABLE event_log_epochs (
                epoch TEXT PRIMARY KEY, base_seq INTEGER NOT NULL, started_at TEXT NOT NULL
            );
            INSERT INTO event_log_epochs VALUES ('ccc', 4, 't'), ('aaa', 0, 't'), ('bbb', 4, 't');
            PRAGMA user_version = 6;
            """
        )
    conn.close()
    store = SqliteStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        with store.read() as tx:
            assert eventlog.epochs(tx) == [("aaa", 0), ("ccc", 4), ("bbb", 4)]
            assert eventlog.current_epoch(tx) == "bbb"
        with store.write() as tx:
            assert eventlog.start_epoch(tx, "t", replacing="bbb") is not None
        assert store.migrate() == SCHEMA_VERSION, "a second run has nothing to do"
    finally:
        store.close()


def _event_row(seq: int, pushed: int) -> tuple[Any, ...]:
    """An event row of a store before migration 9, with its ``pushed`` flag."""
    return (
        seq,
        f"e{seq}",
        "order_registered",
        "2026-01-01T00:00:00+00:00",
        1,
        "x",
        "{}",
        "{}",
        pushed,
    )


@pytest.mark.parametrize(
    ("flags", "unpushed"),
    [
        pytest.param([], [], id="empty-log"),
        pytest.param([1, 1, 1], [], id="all-pushed"),
        pytest.param([0, 0], [1, 2], id="none-pushed"),
        pytest.param([1, 1, 0, 0], [3, 4], id="a-tail-waits"),
        # Flags per row allowed a pushed event above an unpushed one: the mark goes below
        # the unpushed one, and the event above it is pushed again (at-least-once).
        pytest.param([1, 0, 1, 0], [2, 3, 4], id="a-gap"),
    ],
)
def test_migration_9_keeps_unpushed_events_unpushed_and_pushed_ones_pushed(
    empty_url: str, monkeypatch: pytest.MonkeyPatch, flags: list[int], unpushed: list[int]
) -> None:
    with monkeypatch.context() as before_9:  # a store of the code before the mark
        before_9.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:8])
        before_9.setattr(sqlite_schema, "SCHEMA_VERSION", 8)
        before_9.setattr(postgres_schema, "MIGRATIONS", postgres_schema.MIGRATIONS[:8])
        old = open_url(empty_url)
        try:
            assert old.schema_version() == 8
            with old.write() as tx:
                tx.executemany(
                    "INSERT INTO events (seq, id, type, at, order_id, employer_cvr, header,"
                    " order_doc, pushed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_event_row(seq, pushed) for seq, pushed in enumerate(flags, 1)],
                )
        finally:
            old.close()
    store = open_url(empty_url)
    try:
        assert store.schema_version() == SCHEMA_VERSION
        with store.read() as tx:
            assert "pushed" not in tx.columns("events")
            assert [seq for seq, _ in eventlog.unpushed(tx, 100)] == unpushed
            assert eventlog.backlog(tx)[0] == len(unpushed)
            mark = eventlog.pushed_upto(tx)
        # Run again (a crash before the version was recorded): the mark stays where it is.
        if store.engine == "sqlite":
            store.connection().execute("PRAGMA user_version = 8")
        else:
            store.connection().execute("DELETE FROM schema_migrations WHERE version >= 9")
        assert store.migrate() == 8
        with store.read() as tx:
            assert eventlog.pushed_upto(tx) == mark
            assert [seq for seq, _ in eventlog.unpushed(tx, 100)] == unpushed
        foundation = Foundation(store)
        register(foundation)
        with store.read() as tx:
            assert [seq for seq, _ in eventlog.unpushed(tx, 100)] == [*unpushed, len(flags) + 1]
    finally:
        store.close()
