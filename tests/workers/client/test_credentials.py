"""Clients that make their own signing key on first use (workers/client/credentials.py), several
at once: each gets the one key the first of them made, and no half-written file is left."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from shared import keys
from shared.settings import Settings
from shared.store import SqliteStore
from workers.client.credentials import key_path, signing_key

pytestmark = pytest.mark.timeout(120)


def _first_use(home: str, principal: str, start: Any, results: multiprocessing.Queue[str]) -> None:
    settings = Settings(home=Path(home))
    start.wait()  # imports done: all four ask at the same moment
    results.put(signing_key(settings, principal).key_id)


@pytest.mark.parametrize(
    "principal",
    [pytest.param("system", id="system"), pytest.param("jobcentre:101", id="jobcentre")],
)
def test_clients_starting_at_once_share_the_one_key_the_first_made(
    tmp_path: Path, principal: str
) -> None:
    settings = Settings(home=tmp_path)
    SqliteStore(settings.db_path).close()  # the store exists; no key yet
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    start = context.Barrier(4)
    clients = [
        context.Process(target=_first_use, args=(str(tmp_path), principal, start, results))
        for _ in range(4)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join(60)
    assert [client.exitcode for client in clients] == [0] * 4
    made = {results.get(timeout=5) for _ in clients}
    assert len(made) == 1, "every client signs with the same key"
    path = key_path(settings, principal)
    assert {p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")} == {path.name}, (
        "no temporary file is left beside the key file"
    )
    assert path.stat().st_mode & 0o777 == 0o600
    store = SqliteStore(settings.db_path)
    try:
        with store.read() as conn:
            assert set(keys.valid_keys(conn, principal)) == made
    finally:
        store.close()
