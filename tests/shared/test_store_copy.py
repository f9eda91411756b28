"""``copy_store`` into PostgreSQL (issue 29): every value arrives exactly as it was, the
copy has the migrated schema's indexes, constraints and search vector, a copy that does
not verify or fails half-way leaves the target empty."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shared.commands import CommandKind
from shared.foundation import Foundation
from shared.store import SqliteStore, Store, open_url, postgres_copy
from shared.store.copy import SEEDED, copy_store, table_summary
from tests.shared.test_foundation import JOBCENTRE, ok, register

pytestmark = pytest.mark.postgres

K = CommandKind

#: access_log rows of every kind of value a column holds: (caseworker, order_id, command_id).
ODD_VALUES = [
    pytest.param(None, None, None, id="nulls"),
    pytest.param("Tømrer ærø Å 🛠️ e\u0301 עברית \u2028 \u00a0", 1, "ü", id="unicode"),
    pytest.param('tab\there\nnew line "quoted" back\\slash \x01', 2, "'", id="control-chars"),
    pytest.param("", 2**63 - 1, "", id="largest-bigint"),
    pytest.param("N", -(2**63), "V1:x", id="smallest-bigint-and-lookalikes"),
    pytest.param(1 / 3, 0, "1e-05", id="float-in-a-text-column"),
    pytest.param(
        '{"a": [1, 2.5e-300, null], "ø": "\\u00f8 \\n", "big": 123456789012345678901234567890}',
        42,
        "[]",
        id="json-text",
    ),
]


def _fresh(cluster: Any) -> Store:
    return open_url(cluster.fresh_database())


def _all_rows(store: Store, table: str) -> list[tuple[Any, ...]]:
    with store.read() as tx:
        columns = tx.columns(table)
        rows = tx.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    return sorted((tuple(row) for row in rows), key=repr)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[SqliteStore]:
    """A SQLite store with two orders (one findable as "Tømrer"), a placement and its log."""
    store = SqliteStore(tmp_path / "source.db")
    foundation = Foundation(store)
    order = register(foundation, title="Tømrer til Aarhus")
    register(foundation)
    ok(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": "0101011234"})
    yield store
    store.close()


@pytest.mark.parametrize(("caseworker", "order_id", "command_id"), ODD_VALUES)
def test_every_value_arrives_exactly(
    source: SqliteStore,
    postgres_cluster: Any,
    caseworker: Any,
    order_id: int | None,
    command_id: str | None,
) -> None:
    with source.write() as tx:
        tx.execute(
            "INSERT INTO access_log (at, person, organisation, caseworker, action, order_id,"
            " command_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("2026-12-07T00:00:00+00:00", "p", "o", caseworker, "a", order_id, command_id),
        )
    target = _fresh(postgres_cluster)
    try:
        report = copy_store(source, target)
        for table in ("access_log", "orders", "placements", "placement_log"):
            assert _all_rows(target, table) == _all_rows(source, table), table
        with target.read() as tx:
            found = table_summary(tx, "access_log", tx.columns("access_log"))
        assert found == report["access_log"]
        assert found["rows"] == len(_all_rows(source, "access_log")) >= 1
    finally:
        target.close()


def test_a_text_and_an_integer_that_print_alike_have_different_digests() -> None:
    from shared.store.copy import render

    assert render(["1", None]) != render([None, "1"])
    assert render(["N"]) != render([None])
    assert render(["ab", "c"]) != render(["a", "bc"])


def _schema(store: Store) -> dict[str, set[tuple[str, ...]]]:
    with store.read() as tx:
        indexes = tx.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema()"
        ).fetchall()
        constraints = tx.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE connamespace = current_schema()::regnamespace"
        ).fetchall()
        generated = tx.execute(
            "SELECT c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_attrdef d"
            " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attgenerated = 's' AND c.relnamespace = current_schema()::regnamespace"
        ).fetchall()
        triggers = tx.execute(
            "SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)"
            " FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
        ).fetchall()
        columns = tx.execute(
            "SELECT table_name, column_name, ordinal_position::text FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
        ).fetchall()
    return {
        "indexes": {tuple(map(str, row)) for row in indexes},
        "constraints": {tuple(map(str, row)) for row in constraints},
        "generated": {tuple(map(str, row)) for row in generated},
        "triggers": {tuple(map(str, row)) for row in triggers},
        "columns": {tuple(map(str, row)) for row in columns},
    }


def test_the_copy_has_the_migrated_schema_and_its_search_works(
    source: SqliteStore, postgres_cluster: Any
) -> None:
    target, migrated = _fresh(postgres_cluster), _fresh(postgres_cluster)
    try:
        seconds: dict[str, Any] = {}
        copy_store(source, target, seconds=seconds)
        assert _schema(target) == _schema(migrated), "indexes and foreign keys built again"
        kept_by = {name for table, name, _ in _schema(target)["triggers"] if table == "orders"}
        assert kept_by == {"orders_search_on_insert", "orders_search_on_update"}, (
            "the search vector is kept by its triggers"
        )
        assert set(seconds) == {"load", "indexes", "verify", "total"}
        assert "orders" in seconds["load"]
        with target.read() as tx:
            empty = tx.execute("SELECT COUNT(*) FROM orders WHERE search IS NULL").fetchone()[0]
        assert empty == 0, "every copied order has its search vector"
        moved = Foundation(target)
        found = ok(moved, JOBCENTRE, K.SEARCH_ORDERS, {"text": "tømr"})
        assert [o["title"] for o in found["results"]] == ["Tømrer til Aarhus"]
        added = register(moved, title="Snedker til Odense")
        found = ok(moved, JOBCENTRE, K.SEARCH_ORDERS, {"text": "snedker"})
        assert [o["id"] for o in found["results"]] == [added["id"]], "new orders are indexed"
    finally:
        target.close()
        migrated.close()


def _table_counts(store: Store) -> dict[str, int]:
    with store.read() as tx:
        return {
            table: int(tx.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in store.tables()
        }


def _corrupt(how: str) -> Any:
    """A :func:`postgres_copy.load` that loads ``orders`` wrong, as ``how`` says."""
    real = postgres_copy.load

    def load(
        conn: psycopg.Connection[Any],
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        **options: Any,
    ) -> int:
        if table != "orders":
            return real(conn, table, columns, rows, **options)
        title = columns.index("title")

        def wrong() -> Iterator[Sequence[Any]]:
            for number, row in enumerate(rows):
                if number == 1 and how == "missing":
                    continue  # the order without placements: no foreign key notices
                if number == 0 and how == "changed":
                    row = [*row[:title], row[title] + " ", *row[title + 1 :]]
                yield row

        return real(conn, table, columns, wrong(), **options)

    return load


@pytest.mark.parametrize(
    "how", [pytest.param("changed", id="a-changed-value"), pytest.param("missing", id="a-row-lost")]
)
def test_a_copy_that_does_not_verify_fails_and_leaves_the_target_empty(
    source: SqliteStore, postgres_cluster: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    target = _fresh(postgres_cluster)
    try:
        before, schema = _table_counts(target), _schema(target)
        monkeypatch.setattr(postgres_copy, "load", _corrupt(how))
        with pytest.raises(RuntimeError, match="table orders differs after the copy"):
            copy_store(source, target)
        assert _table_counts(target) == before, "rolled back: only what migrations seed"
        assert _schema(target) == schema, "the dropped indexes are back"
        monkeypatch.undo()
        assert copy_store(source, target)["orders"]["rows"] == 2, "and it can be copied again"
    finally:
        target.close()


class _Broken(Exception):
    pass


@pytest.mark.parametrize(
    "table",
    [
        pytest.param("orders", id="in-the-first-table"),
        pytest.param("placement_log", id="after-tables-were-loaded"),
        pytest.param("relay_mark", id="in-a-seeded-table"),
    ],
)
def test_a_failure_half_way_leaves_the_target_empty(
    source: SqliteStore, postgres_cluster: Any, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    target = _fresh(postgres_cluster)
    real = postgres_copy.load

    def load(
        conn: Any, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], **options: Any
    ) -> int:
        if name != table:
            return real(conn, name, columns, rows, **options)

        def breaking() -> Iterator[Sequence[Any]]:
            yield from list(rows)[:1]
            raise _Broken("the source went away")

        return real(conn, name, columns, breaking(), **options)

    try:
        seeded = {name: _all_rows(target, name) for name in SEEDED}
        before, schema = _table_counts(target), _schema(target)
        monkeypatch.setattr(postgres_copy, "load", load)
        with pytest.raises(_Broken):
            copy_store(source, target)
        assert _table_counts(target) == before
        assert {name: _all_rows(target, name) for name in SEEDED} == seeded
        assert _schema(target) == schema
        with target.read() as tx:
            assert tx.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0
    finally:
        target.close()


def test_a_postgres_store_copies_into_another_alike(
    source: SqliteStore, postgres_cluster: Any
) -> None:
    first, second = _fresh(postgres_cluster), _fresh(postgres_cluster)
    try:
        report = copy_store(source, first)
        again = copy_store(first, second)
        for table in first.tables():
            assert again[table]["rows"] == report[table]["rows"], table
            assert _all_rows(second, table) == _all_rows(first, table), table
    finally:
        first.close()
        second.close()


def test_a_role_that_does_not_own_the_tables_copies_with_them_indexed(
    source: SqliteStore, postgres_cluster: Any
) -> None:
    """Dropping indexes, TRUNCATE and ANALYZE are the owner's: a role granted the rows only
    gets a plain COPY into the indexed tables, verified and all-or-nothing the same."""
    url = postgres_cluster.fresh_database()
    role = "copier_" + url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as owner:
        owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'copier'")
        owner.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        owner.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")
    as_role = url.replace("jobordre:jobordre@", f"{role}:copier@")
    target, migrated = open_url(as_role, migrate=False), _fresh(postgres_cluster)
    try:
        report = copy_store(source, target)
        assert report["orders"]["rows"] == 2
        for table in ("orders", "placements", "placement_log", *SEEDED):
            assert _all_rows(target, table) == _all_rows(source, table), table
        assert _schema(target) == _schema(migrated)
        found = ok(Foundation(target), JOBCENTRE, K.SEARCH_ORDERS, {"text": "tømr"})
        assert [o["title"] for o in found["results"]] == ["Tømrer til Aarhus"]
    finally:
        target.close()
        migrated.close()


#: Lookups by key of the write path on tables that a store's commands make grow from
#: nothing: (statement, its parameters' types).
KEY_LOOKUPS = [
    pytest.param(
        "SELECT reply FROM commands WHERE principal = $1 AND command_id = $2",
        ("text", "text"),
        id="the-ledger",
    ),
    pytest.param("SELECT 1 FROM events WHERE seq = $1", ("bigint",), id="the-event-log"),
    pytest.param("SELECT status FROM placements WHERE id = $1", ("bigint",), id="placements"),
]


def _generic_plan(url: str, query: str, types: Sequence[str]) -> str:
    """The plan a prepared statement keeps (PostgreSQL's generic plan) of ``query``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE lookup ({', '.join(types)}) AS {query}")
        nulls = ", ".join("NULL" for _ in types)
        return "\n".join(str(row[0]) for row in conn.execute(f"EXPLAIN EXECUTE lookup ({nulls})"))


@pytest.fixture
def orders_only(tmp_path: Path) -> Iterator[SqliteStore]:
    """A SQLite store of 300 generated orders (ten pages and more), and nothing else."""
    from workers.bench.generator import load_orders

    load_orders(tmp_path / "orders.db", 300, progress=False)
    store = SqliteStore(tmp_path / "orders.db")
    yield store
    store.close()


@pytest.mark.parametrize(("query", "types"), KEY_LOOKUPS)
def test_a_table_copied_empty_is_looked_up_by_key_through_its_index(
    orders_only: SqliteStore, postgres_cluster: Any, query: str, types: Sequence[str]
) -> None:
    """A prepared statement keeps the plan it was first given while the table grows: a
    ledger analyzed empty would have every command scan it whole."""
    url = postgres_cluster.fresh_database()
    target = open_url(url)
    try:
        copy_store(orders_only, target)
        plan = _generic_plan(url, query, types)
        assert "Index" in plan and "Seq Scan" not in plan, plan
    finally:
        target.close()


def test_the_tables_of_ten_pages_or_more_are_analyzed_and_the_empty_ones_are_not(
    orders_only: SqliteStore, postgres_cluster: Any
) -> None:
    url = postgres_cluster.fresh_database()
    target = open_url(url)
    try:
        copy_store(orders_only, target)
        with psycopg.connect(url) as conn:
            found: dict[str, float] = dict(
                conn.execute(
                    "SELECT relname, reltuples FROM pg_class"
                    " WHERE relname IN ('orders', 'commands', 'events')"
                ).fetchall()
            )
        assert found == {"orders": 300, "commands": -1, "events": -1}
    finally:
        target.close()
