"""``jobordre``: the command line, a thin wrapper over :class:`workers.client.Client`.

The commands, flags, JSON fields, error codes and exit codes here are a public contract
that jobcentre systems script against: extend them, never rename or drop them. The exit
code of each error code is :data:`workers.cli.common.EXIT_CODES`.

One module per command family adds its commands (``add_commands(subparsers)``, each
parser's ``handler(args, settings) -> exit code``); what they share is
workers/cli/common.py, which imports no family.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from collections.abc import Sequence
from types import ModuleType

from notifier import cli as notifier_cli
from shared.errors import JobordreError
from workers.cli import (
    bench,
    broker,
    inbox,
    keys,
    ops,
    orders,
    placements,
    privacy,
    protocol,
    result,
    serve,
    store,
)
from workers.cli.common import EXIT_CODES, Handler, Parser, load_settings

#: The command families, in the order ``jobordre --help`` lists their commands.
FAMILIES: tuple[ModuleType, ...] = (
    serve,
    orders,
    placements,
    inbox,
    keys,
    protocol,
    broker,
    store,
    privacy,
    result,
    ops,
    notifier_cli,
    bench,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``jobordre`` argument parser."""
    parser = Parser(
        prog="jobordre",
        description="Job orders through the common data foundation (BEK 442/2023 § 137).",
    )
    parser.add_argument(
        "--version", action="version", version=f"jobordre {importlib.metadata.version('jobordre')}"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    for family in FAMILIES:
        family.add_commands(commands)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit code (see :data:`EXIT_CODES`)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments
    try:
        args = build_parser().parse_args(arguments)
        handler: Handler = args.handler
        return handler(args, load_settings())
    except JobordreError as error:
        if as_json:
            print(json.dumps({"error": error.to_dict()}, ensure_ascii=False))
        else:
            print(f"jobordre: {error.code}: {error.message}", file=sys.stderr)
        return EXIT_CODES.get(error.code, 1)


def main() -> None:
    """Console entry point."""
    sys.exit(run())
