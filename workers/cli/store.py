"""``jobordre migrate`` and ``jobordre store copy``: the operator's commands for the store.

``migrate`` runs the store's numbered migrations (workers also run them at start; several
hosts starting at once migrate one after the other). ``store copy --to URL`` copies the
store (by default the SQLite file at ``JOBORDRE_DB``) into an empty PostgreSQL database and
verifies it; then point the workers at it with ``JOBORDRE_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
from typing import Any

from shared.settings import Settings
from shared.store import open_store, open_url
from shared.store.copy import copy_store
from workers.cli.common import Parser, emit


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings, migrate=False)
    try:
        before = store.migrate()
        after = store.schema_version()
    finally:
        store.close()
    emit(
        {"engine": store.engine, "store": store.describe(), "from": before, "to": after},
        args.json,
        f"{store.engine} store {store.describe()}: schema version {before} -> {after}"
        if before != after
        else f"{store.engine} store {store.describe()}: at schema version {after} already",
    )
    return 0


def _copy(args: argparse.Namespace, settings: Settings) -> int:
    source = open_url(args.source) if args.source else open_store(settings)
    try:
        target = open_url(args.to, pool_size=2)
        try:
            tables = copy_store(source, target)
        finally:
            target.close()
    finally:
        source.close()
    document = {
        "from": {"engine": source.engine, "store": source.describe()},
        "to": {"engine": target.engine, "store": target.describe()},
        "tables": tables,
        "verified": True,
    }
    lines = [f"copied {source.describe()} -> {target.describe()}, verified:"]
    lines += [
        f"  {name}: {t['rows']} rows, checksum {t['checksum'][:16]}" for name, t in tables.items()
    ]
    emit(document, args.json, "\n".join(lines))
    return 0


def add_commands(commands: Any) -> None:
    """Add ``jobordre migrate`` and ``jobordre store copy``."""
    p = commands.add_parser("migrate", help="run the store's schema migrations")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_migrate)
    group = commands.add_parser("store", help="the foundation's store (operator)")
    actions = group.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = actions.add_parser(
        "copy", help="copy the store into an empty PostgreSQL database, verified per table"
    )
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://user:pass@host/db")
    p.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="the store to copy (default: the configured store, e.g. the SQLite file)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_copy)
