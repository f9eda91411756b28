"""The PostgreSQL store's pooled sessions (``_configure_session`` in
shared/store/postgres.py): what each new session is set up with."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from shared.foundation import Foundation
from shared.store import open_url
from tests.shared.test_foundation import register

pytestmark = pytest.mark.postgres


def test_an_order_too_long_for_its_row_is_compressed_with_lz4(postgres_cluster: Any) -> None:
    """pglz, PostgreSQL's default, costs the server more CPU a write than lz4."""
    url = postgres_cluster.fresh_database()
    store = open_url(url)
    try:
        order = register(Foundation(store), description="Ren og lang beskrivelse nummer. " * 150)
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
            ).fetchone()
            assert row is not None and "lz4" in row[0], (
                "this PostgreSQL was built without lz4: install one built with it (Debian's is)"
            )
            stored = conn.execute(
                "SELECT pg_column_compression(doc) FROM orders WHERE id = %s", [order["id"]]
            ).fetchone()
        assert stored == ("lz4",)
    finally:
        store.close()
