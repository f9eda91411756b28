"""``jobordre inbox``, ``follow``/``unfollow``/``following`` and ``expire``.

``inbox --follow`` wakes on the organisation's wake-up streams (shared/events.py) and
reads the events themselves through the ``inbox`` query, so what it prints is exactly what
the organisation is entitled to, masked for it, in ``seq`` order, each event once.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from shared.commands import CommandKind
from shared.errors import InvalidInput, Unavailable
from shared.events import Cursor
from shared.redaction import escape_controls
from shared.settings import Settings
from workers.cli.common import Command, acting, emit

#: How long ``--follow`` waits on the stream before it reads the inbox anyway, in ms.
FOLLOW_BLOCK_MS = 5_000
#: How long ``--follow`` waits before reconnecting to a lost Redis, in milliseconds.
RECONNECT_MS = 1_000


def _cursor(text: str) -> str:
    """``--since``: a cursor as printed (``<epoch>:<seq>``) or a bare seq (older format)."""
    try:
        return str(Cursor.parse(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a cursor: give the `cursor` of the last event you read"
        ) from None


def _human_event(event: dict[str, Any]) -> str:
    # Control characters written out: a title stored before they were refused stays inert.
    return escape_controls(
        f"#{event['seq']} {event['at']} {event['type']} jobordre {event['order_id']} "
        f"«{event['title']}» [{event['status']}] af {event['by']}"
    )


def _inbox_payload(args: argparse.Namespace, since: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"since": since, "limit": args.limit}
    if args.headers_only:
        payload["headers_only"] = True
    return payload


def _pages(client: Any, args: argparse.Namespace, since: str) -> Iterator[dict[str, Any]]:
    """Every inbox event after ``since``, page by page."""
    while True:
        page = client.call(CommandKind.INBOX, _inbox_payload(args, since))
        yield from page["events"]
        # A page may end before ``limit`` when its events are large (bounded by size too).
        if not page["events"]:
            return
        since = page["cursor"]


def _follow(args: argparse.Namespace, settings: Settings) -> int:
    from notifier.source import RedisEventStream
    from workers.client import Client

    client = Client(settings, args.principal, caseworker=args.caseworker)
    stream = RedisEventStream(client.url, settings.redis_prefix, client.principal)
    cursor = Cursor.parse(args.since)
    position: str | None = None
    while True:
        try:
            if position is None:
                position, _, _ = stream.tail()
            for event in _pages(client, args, str(cursor)):
                line = json.dumps(event, ensure_ascii=False) if args.json else _human_event(event)
                print(line, flush=True)
                cursor = Cursor.parse(event["cursor"])
            # Wake on the first wake-up past the cursor on the organisation's streams (or
            # of another log: the inbox then resolves the cursor); the inbox is the truth.
            while True:
                entries = stream.read(position, FOLLOW_BLOCK_MS)
                if entries:
                    position = entries[-1][0]
                signals = [signal for _, signal in entries if signal is not None]
                if not entries or any(
                    s.seq > cursor.seq or (s.epoch or cursor.epoch) != cursor.epoch for s in signals
                ):
                    break
        except (redis.RedisError, Unavailable):
            time.sleep(RECONNECT_MS / 1000)
            position = None


def _inbox(args: argparse.Namespace, settings: Settings) -> int:
    if args.follow:
        return _follow(args, settings)
    from workers.client import Client

    client = Client(settings, args.principal, caseworker=args.caseworker)
    try:
        page = client.call(CommandKind.INBOX, _inbox_payload(args, args.since))
    finally:
        client.close()
    human = "\n".join([*(_human_event(e) for e in page["events"]), f"cursor: {page['cursor']}"])
    emit(page, args.json, human)
    return 0


def _caseworker(args: argparse.Namespace) -> str:
    if not args.caseworker:
        raise InvalidInput("--caseworker: name the caseworker who follows", field="caseworker")
    return str(args.caseworker)


def _follow_payload(args: argparse.Namespace) -> dict[str, Any]:
    payload: dict[str, Any] = {"caseworker": _caseworker(args)}
    if args.order_id is not None:
        payload["order_id"] = args.order_id
    if args.employer is not None:
        payload["employer"] = args.employer
    if args.placements:
        payload["placements"] = True
    return payload


def _human_following(result: dict[str, Any]) -> str:
    return (
        f"{result['caseworker']} ({result['organisation']}) følger jobordrer "
        f"{result['orders'] or '—'}, arbejdsgivere {result['employers'] or '—'}"
        + (
            ", og alle jobordrer med egne formidlinger"
            if result["placements_of_my_organisation"]
            else ""
        )
    )


#: What ``follow``/``unfollow`` say, by whether the call changed anything.
_FOLLOW_TEXTS = {
    CommandKind.FOLLOW: {True: "følger nu", False: "følger allerede"},
    CommandKind.UNFOLLOW: {True: "følger ikke længere", False: "fulgte ikke"},
}


def _human_follow(kind: CommandKind) -> Callable[[dict[str, Any]], str]:
    def text(result: dict[str, Any]) -> str:
        what = (
            f"jobordre {result['order_id']}"
            if result["order_id"] is not None
            else f"arbejdsgiver {result['employer']}"
            if result["employer"] is not None
            else "alle jobordrer med egne formidlinger"
        )
        return (
            f"{result['caseworker']} ({result['organisation']}) "
            f"{_FOLLOW_TEXTS[kind][bool(result['changed'])]} {what}; "
            f"følger {result['count']} i alt (`jobordre following` viser dem)"
        )

    return text


def _follow_command(kind: CommandKind) -> Callable[[argparse.Namespace], Command]:
    def build(args: argparse.Namespace) -> Command:
        return kind, _follow_payload(args)

    return build


def add_commands(commands: Any) -> None:
    """Add ``inbox``, ``follow``, ``unfollow``, ``following`` and ``expire``."""
    p = commands.add_parser("inbox", help="the events your organisation receives (R1–R4, S6)")
    p.add_argument("--since", type=_cursor, default="0", metavar="CURSOR")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--follow", action="store_true", help="keep printing events as they happen")
    p.add_argument(
        "--headers-only",
        action="store_true",
        help="only the events' headers (no order, no placement log): what a notify key may read",
    )
    acting(p, lambda a: (CommandKind.INBOX, {}))
    p.set_defaults(handler=_inbox)

    for name, kind, text in (
        ("follow", CommandKind.FOLLOW, "follow a job order, an employer or your placements"),
        ("unfollow", CommandKind.UNFOLLOW, "stop following"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("order_id", type=int, nargs="?")
        p.add_argument("--employer", metavar="CVR", help="every order of this employer")
        p.add_argument(
            "--placements",
            action="store_true",
            help="every order where your organisation placed someone",
        )
        acting(p, _follow_command(kind), human=_human_follow(kind))
    p = commands.add_parser("following", help="what a caseworker follows")
    acting(
        p, lambda a: (CommandKind.FOLLOWING, {"caseworker": _caseworker(a)}), human=_human_following
    )

    p = commands.add_parser(
        "expire",
        help="close orders whose placement deadline has passed "
        "(R3d; runs by itself, this runs it now)",
    )
    p.add_argument("--today", help="the date to expire against (YYYY-MM-DD); default today")
    acting(
        p,
        lambda a: (CommandKind.EXPIRE_ORDERS, {"today": a.today} if a.today else {}),
        human=lambda r: f"lukket (frist udløbet): {r['closed'] or 'ingen'}",
    )
