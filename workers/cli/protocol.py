"""``jobordre protocol check``: what the foundation would refuse in a command, offline.

Needs no Redis, no worker and no store: the message file, the organisation's key file and,
to open a version 2 payload, the foundation's key file (``--foundation``). Exit 0 when
nothing would be refused, 2 (``validation_error``) otherwise; the canonical form the
signature must cover is printed either way (docs/protocol.md § 14.12).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.protocol_check import check
from shared.settings import Settings
from shared.signing_v2 import FoundationKey
from workers.cli.common import Parser, emit, read_limited

#: Largest key file read, in bytes (a foundation key file is about 300).
KEY_FILE_BYTES = 4096
#: Largest message file read, in bytes: an envelope is at most 256 kB, its message a little more.
MAX_MESSAGE_FILE_BYTES = 2 * 256 * 1024


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from workers.client.credentials import read_key_file

    message = read_limited(
        args.message, "message", MAX_MESSAGE_FILE_BYTES, "an envelope is smaller"
    )
    key = read_key_file(Path(args.key))
    foundation = (
        FoundationKey.from_json(
            read_limited(
                args.foundation, "foundation", KEY_FILE_BYTES, "a key file is smaller"
            ).decode()
        )
        if args.foundation
        else None
    )
    given = (
        read_limited(
            args.canonical, "canonical", MAX_MESSAGE_FILE_BYTES, "an envelope is smaller"
        ).rstrip(b"\n")
        if args.canonical
        else None
    )
    report = check(
        message,
        key,
        foundation=foundation,
        canonical_given=given,
        now=datetime.now(UTC),
        max_age_ms=settings.signature_max_age_ms,
    )
    lines = [f"{p.field}: {p.message}" for p in report.problems] or [
        "ok: the foundation would take this command (as far as can be told offline)"
    ]
    if report.canonical is not None:
        lines += ["", "canonical form expected (the bytes the signature covers):", report.canonical]
    emit(report.to_dict(), args.json, "\n".join(lines))
    return 0 if report.ok else 2


def add_commands(commands: Any) -> None:
    """Add ``jobordre protocol check``."""
    group = commands.add_parser("protocol", help="the queue protocol (docs/protocol.md)")
    actions = group.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = actions.add_parser(
        "check", help="say offline what the foundation would refuse in a command, and why"
    )
    p.add_argument("message", metavar="MESSAGE.json", help="an envelope or its Dramatiq message")
    p.add_argument("--key", required=True, metavar="KEYFILE", help="the organisation's key file")
    p.add_argument(
        "--foundation",
        metavar="KEYFILE",
        help="the foundation's key file, to open and validate a version 2 payload",
    )
    p.add_argument(
        "--canonical",
        metavar="FILE",
        help="the canonical bytes the client signed, compared byte by byte with the expected",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_check)
