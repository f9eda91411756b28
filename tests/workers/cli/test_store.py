"""``jobordre migrate``, ``jobordre store copy`` and ``jobordre health`` on PostgreSQL, through
the installed program: grow a SQLite store into PostgreSQL and keep working on the copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import System, free_port
from tests.factories import CPR_1, order_doc
from workers.bench.generator import load_orders

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

JOBCENTRE = "jobcentre:101"
#: Orders in the generated store that is copied (the README has the 100,000-order figure).
GENERATED = 2_000


def test_migrate_brings_an_empty_database_to_the_current_version(
    bare_system: System, postgres_cluster: Any
) -> None:
    bare_system.database_url = postgres_cluster.fresh_database(migrated=False)
    first = bare_system.json("migrate")
    assert (first["engine"], first["from"]) == ("postgres", 0)
    assert first["to"] > 0
    again = bare_system.json("migrate")
    assert (again["from"], again["to"]) == (first["to"], first["to"])
    assert "jobordre:jobordre@" not in json.dumps(again), "no password in the output"


def test_copy_then_serve_the_copy(
    bare_system: System, postgres_cluster: Any, tmp_path: Path
) -> None:
    system = bare_system
    load_orders(system.db, GENERATED, seed=3, progress=False)
    system.start_worker(threads=2)
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc(title="Tømrer til kopien")))
    order = system.json("order", "register", "--file", str(path), "--as", JOBCENTRE)
    placed = system.json(
        "placement", "register", str(order["id"]), "--cpr", CPR_1, "--as", JOBCENTRE
    )
    system.stop_workers()

    url = postgres_cluster.fresh_database()
    copied = system.json("store", "copy", "--to", url)
    assert copied["verified"] is True
    assert copied["to"]["engine"] == "postgres"
    assert copied["tables"]["orders"]["rows"] == GENERATED + 1
    assert copied["tables"]["placement_log"]["rows"] >= 1
    assert "jobordre:jobordre@" not in json.dumps(copied), "no password in the output"
    refused = system.json("store", "copy", "--to", url, expect=2)
    assert refused["error"]["code"] == "validation_error"
    assert "not empty" in refused["error"]["message"]

    system.database_url = url
    system.start_worker(threads=2)
    fetched = system.json("order", "get", str(order["id"]), "--as", JOBCENTRE)
    assert fetched["title"] == "Tømrer til kopien"
    log = system.json("placement", "log", str(order["id"]), "--as", JOBCENTRE)
    assert [p["id"] for p in log["placements"]] == [placed["id"]]
    found = system.json("order", "search", "tømrer", "kopi", "--as", JOBCENTRE)
    assert order["id"] in [o["id"] for o in found["results"]]
    changed = system.json("order", "status", str(order["id"]), "inactivated", "--as", JOBCENTRE)
    assert changed["version"] == order["version"] + 1


def test_health_names_the_engine_and_checks_postgres(
    bare_system: System, postgres_cluster: Any
) -> None:
    bare_system.database_url = postgres_cluster.fresh_database()
    bare_system.start_worker(threads=1)
    result = bare_system.cli("health", "--json")
    document = json.loads(result.out)
    checks = {c["name"]: c for c in document["checks"]}
    assert result.code == 0, result.out
    assert document["store_engine"] == "postgres"
    assert checks["store"]["ok"] and checks["store"]["detail"].startswith("postgres store")
    wrong = f"postgresql://jobordre:jobordre@127.0.0.1:{free_port()}/nowhere"
    result = bare_system.cli("health", "--json", JOBORDRE_DATABASE_URL=wrong)
    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    assert result.code == 1
    assert checks["store"]["ok"] is False
    assert "JOBORDRE_DATABASE_URL" in checks["store"]["detail"]
    assert "jobordre:jobordre@" not in result.out


def test_copy_takes_the_targets_password_from_a_file_or_the_environment(
    bare_system: System, postgres_cluster: Any, tmp_path: Path
) -> None:
    # Whatever is on the command line, every user of the host reads (ps, /proc/PID/cmdline).
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc()))
    bare_system.start_worker(threads=1)
    bare_system.json("order", "register", "--file", str(path), "--as", JOBCENTRE)
    bare_system.stop_workers()
    secret = tmp_path / "pg-password"
    secret.write_text("jobordre\n")
    secret.chmod(0o600)
    bare = postgres_cluster.fresh_database().replace("jobordre:jobordre@", "jobordre@")
    assert ":jobordre@" not in bare
    copied = bare_system.json("store", "copy", "--to", bare, "--to-password-file", str(secret))
    assert copied["verified"] is True and copied["tables"]["orders"]["rows"] == 1
    again = postgres_cluster.fresh_database().replace("jobordre:jobordre@", "jobordre@")
    from_env = bare_system.cli("store", "copy", "--to", again, "--json", PGPASSWORD="jobordre")
    assert from_env.code == 0, from_env.err
    assert "password" not in from_env.err
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n")
    third = postgres_cluster.fresh_database().replace("jobordre:jobordre@", "jobordre@")
    refused = bare_system.cli("store", "copy", "--to", third, "--to-password-file", str(wrong))
    assert refused.code != 0 and "not-it" not in refused.out + refused.err


def test_copy_warns_of_a_password_in_the_url_and_still_copies(
    bare_system: System, postgres_cluster: Any
) -> None:
    with_password = postgres_cluster.fresh_database()
    assert "jobordre:jobordre@" in with_password
    done = bare_system.cli("store", "copy", "--to", with_password, "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["verified"] is True
    assert "--to carries a password" in done.err and "jobordre:jobordre@" not in done.err
