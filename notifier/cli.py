"""``jobordre notifier``: run the caseworker's desktop notifier in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import Any

from shared.models import Principal
from shared.redaction import RedactingFormatter
from shared.settings import Settings


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("jobordre notifier: %(message)s"))
    logger = logging.getLogger("notifier")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _notifier(args: argparse.Namespace, settings: Settings) -> int:
    from notifier.backend import (
        Desktop,
        FallbackDesktop,
        TerminalDesktop,
        check_order_url,
        desktop_backend,
    )
    from notifier.cursor import CursorFile
    from notifier.service import Notifier
    from notifier.source import ClientFoundation, RedisEventStream
    from shared.commands import Following
    from shared.errors import InvalidInput
    from workers.client import Client

    principal = str(Principal.parse(args.principal, "as"))
    try:
        Following(caseworker=args.caseworker)
    except ValueError:
        raise InvalidInput(
            "caseworker: 1–64 letters, digits or . _ @ -", field="caseworker"
        ) from None
    check_order_url(settings.order_url)
    _configure_logging(args.verbose)
    desktop: Desktop = (
        TerminalDesktop()
        if args.terminal
        else FallbackDesktop(
            desktop_backend(settings.notifier_display_ms, settings.order_url), TerminalDesktop()
        )
    )
    client = Client(settings, principal, caseworker=args.caseworker)
    stream = RedisEventStream(client.url, settings.redis_prefix)
    notifier = Notifier(
        foundation=ClientFoundation(client),
        stream=stream,
        desktop=desktop,
        cursor_file=CursorFile.for_caseworker(settings.home, principal, args.caseworker),
        principal=principal,
        caseworker=args.caseworker,
        language=settings.language,
        quiet_s=settings.notifier_quiet_ms / 1000,
        burst_s=settings.notifier_burst_ms / 1000,
        follows_refresh_s=settings.notifier_follows_refresh_ms / 1000,
        reconnect_max_s=settings.notifier_reconnect_max_ms / 1000,
    )
    stopping: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print("jobordre notifier: running; stop with Ctrl-C", file=sys.stderr, flush=True)
    try:
        notifier.run(lambda: bool(stopping))
    finally:
        stream.close()
        client.close()
    return 0


def add_commands(commands: Any) -> None:
    """Add ``jobordre notifier``."""
    p = commands.add_parser(
        "notifier", help="show desktop notifications for the job orders a caseworker follows"
    )
    p.add_argument("--caseworker", required=True, help="the caseworker whose follows to show")
    p.add_argument(
        "--as",
        dest="principal",
        required=True,
        metavar="PRINCIPAL",
        help="the caseworker's organisation: jobcentre:<kommunekode> or akasse:<code>",
    )
    p.add_argument(
        "--terminal", action="store_true", help="print notifications here, not on the desktop"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log connects and catch-ups")
    p.set_defaults(handler=_notifier)
