"""Ops commands: dead letters (and, as they come, queues, health)."""

from __future__ import annotations

import argparse
from typing import Any

from shared.settings import Settings
from workers.cli import Parser, emit


def _dead_list(args: argparse.Namespace, settings: Settings) -> int:
    from shared.store import Store, list_dead_letters

    with Store(settings.db_path).read() as conn:
        letters = list_dead_letters(conn, args.limit)
    human = (
        "\n".join(
            f"#{d['id']} {d['at']} {d['source']} {d['kind'] or '?'} {d['code']}: {d['reason']}"
            for d in letters
        )
        or "no dead letters"
    )
    emit({"dead_letters": letters}, args.json, human)
    return 0


def add_commands(commands: Any) -> None:
    """Add ``jobordre dead ...``."""
    dead = commands.add_parser("dead", help="dead letters: what could not be processed")
    deads = dead.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = deads.add_parser("list", help="list dead letters, newest first (reads the store)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_dead_list)
