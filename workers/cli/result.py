"""``jobordre result COMMAND_ID``: the stored result of an earlier command of the caller's.

What integrators that fire many commands with ``--no-wait`` use, and how a client picks up
a result after its wait timed out. It prints exactly what the command would have printed
(and exits as it would have), except that a CPR number in a stored result is masked.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from shared.commands import CommandKind
from shared.errors import JobordreError, NotFound
from shared.settings import Settings
from workers.cli.common import Parser, emit, human

#: How often ``--timeout-ms`` looks again for a result not stored yet, in milliseconds.
POLL_MS = 100


def _result(args: argparse.Namespace, settings: Settings) -> int:
    from workers.client import Client

    client = Client(settings, args.principal, caseworker=args.caseworker)
    deadline = time.monotonic() + max(args.timeout_ms or 0, 0) / 1000
    try:
        while True:
            try:
                found = client.call(CommandKind.COMMAND_RESULT, {"command_id": args.command_id})
                break
            except NotFound:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(POLL_MS / 1000)
    finally:
        client.close()
    reply: dict[str, Any] = found["reply"]
    if not reply.get("ok"):
        raise JobordreError.from_dict(reply.get("error") or {})
    result: dict[str, Any] = reply["result"]
    emit(result, args.json, human(CommandKind(found["kind"]), result))
    return 0


def add_commands(commands: Any) -> None:
    """Add ``result``."""
    p: Parser = commands.add_parser(
        "result", help="the stored result of an earlier command (e.g. one sent with --no-wait)"
    )
    p.add_argument("command_id", metavar="COMMAND_ID")
    p.add_argument("--as", dest="principal", required=True, metavar="PRINCIPAL")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--caseworker", help="the caseworker asking")
    p.add_argument(
        "--timeout-ms",
        type=int,
        default=0,
        help="wait up to this long for a result not stored yet (default: look once)",
    )
    p.set_defaults(handler=_result)
