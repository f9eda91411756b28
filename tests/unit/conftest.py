"""The fast tier: logic tests that need no server (no redis-server, no PostgreSQL, no X
display or D-Bus); ``pytest tests/unit`` runs in seconds. A test here that asks for a
server fixture is in the wrong tier: it fails at once, saying where it belongs."""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent

#: The fixtures of tests/conftest.py that start (or need) a server.
SERVER_FIXTURES = frozenset(
    {
        "redis_server",
        "private_redis",
        "system",
        "bare_system",
        "postgres_cluster",
        "store_url",
        "any_store",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.path.is_relative_to(UNIT):
            continue
        wanted = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if wanted:
            raise pytest.UsageError(
                f"{item.nodeid} uses {sorted(wanted)}: it needs a server, so it belongs "
                "beside its module's other tests outside tests/unit"
            )
