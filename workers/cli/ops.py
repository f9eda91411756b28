"""Ops commands: ``jobordre dead ...``, ``jobordre queues`` and ``jobordre health``.

Every command that prints takes ``--json`` (one JSON document on stdout). Nothing here
prints a CPR number: dead letters are shown in their masked form only.
"""

from __future__ import annotations

import argparse
from typing import Any

from shared.settings import Settings
from workers.cli.common import Parser, emit

SOURCES = ("rejected", "crashed", "undecodable")


def _letter_line(d: dict[str, Any]) -> str:
    retried = f" (retried {d['retried_at']} by {d['retried_by']})" if d.get("retried_at") else ""
    return f"#{d['id']} {d['at']} {d['source']} {d['kind'] or '?'} {d['code']}: {d['reason']}" + (
        retried
    )


def _dead_list(args: argparse.Namespace, settings: Settings) -> int:
    from workers.ops.deadletters import list_letters

    letters = list_letters(settings, limit=args.limit, source=args.source, pending=args.pending)
    human = "\n".join(_letter_line(d) for d in letters) or "no dead letters"
    emit({"dead_letters": letters}, args.json, human)
    return 0


def _dead_show(args: argparse.Namespace, settings: Settings) -> int:
    from workers.ops.deadletters import show_letter

    letter = show_letter(settings, args.id)
    human = "\n".join(
        [
            _letter_line(letter),
            f"command id:  {letter['command_id'] or '—'}",
            f"principal:   {letter['principal'] or '—'}",
            f"message:     {letter['message']}",
            "traceback:",
            letter["traceback"] or "  (none)",
        ]
    )
    emit({"dead_letter": letter}, args.json, human)
    return 0


def _dead_retry(args: argparse.Namespace, settings: Settings) -> int:
    from shared.errors import InvalidInput
    from workers.cli.common import EXIT_CODES
    from workers.ops.deadletters import operator_name, retry

    if bool(args.ids) == bool(args.all):
        raise InvalidInput("dead retry: give dead letter ids or --all, not both nor neither")
    operator = operator_name(args.by)
    result = retry(settings, ids=None if args.all else args.ids, operator=operator)
    retried, skipped = result["retried"], result["skipped"]
    human = "\n".join(
        [
            *(
                f"#{r['id']} {r['kind']} back on {r['queue']}"
                + (" (its rejection cleared from the ledger)" if r["ledger_cleared"] else "")
                for r in retried
            ),
            *(f"#{s['id']} not retried ({s['code']}): {s['reason']}" for s in skipped),
        ]
    )
    emit(
        {"retried": retried, "skipped": skipped, "by": operator},
        args.json,
        human or "nothing to retry",
    )
    # --all retries what can be retried and reports the rest; named letters that could
    # not be retried fail the command (a broker failure always does).
    failed = [s for s in skipped if s["code"] == "unavailable" or not args.all]
    return EXIT_CODES.get(failed[0]["code"], 1) if failed else 0


def _dead_purge(args: argparse.Namespace, settings: Settings) -> int:
    from shared.errors import InvalidInput
    from workers.ops.deadletters import (
        open_store,
        operator_name,
        parse_duration,
        purge,
        purge_ids,
    )

    if bool(args.ids) == (args.older_than is not None):
        raise InvalidInput(
            "dead purge: give dead letter ids or --older-than D, not both nor neither",
            field="older_than",
        )
    operator = operator_name(args.by)
    if args.ids:
        result = purge_ids(open_store(settings), args.ids, operator=operator)
        human = f"purged dead letters {', '.join(f'#{i}' for i in result['ids'])}"
    else:
        result = purge(
            open_store(settings), older_than=parse_duration(args.older_than), operator=operator
        )
        human = f"purged {result['purged']} dead letters from before {result['before']}"
    emit(result, args.json, human)
    return 0


def _dead_audit(args: argparse.Namespace, settings: Settings) -> int:
    from workers.ops.deadletters import audit

    rows = audit(settings, args.limit)
    human = "\n".join(
        f"{r['at']} {r['operator']} {r['action']}"
        + (f" #{r['dead_letter_id']}" if r["dead_letter_id"] is not None else "")
        + f" ({r['count']}): {r['detail']}"
        for r in rows
    )
    emit({"audit": rows}, args.json, human or "no retries or purges yet")
    return 0


def _redis(settings: Settings) -> Any:
    from workers.transport.broker import resolve_redis_url
    from workers.transport.redis_connection import connect_redis

    return connect_redis(resolve_redis_url(settings), socket_connect_timeout=5, socket_timeout=10)


def _queues(args: argparse.Namespace, settings: Settings) -> int:
    import redis

    from shared.errors import InvalidInput, Unavailable
    from workers.ops.queues import snapshot
    from workers.ops.watch import render, save_svg, watch
    from workers.transport.broker import redact, resolve_redis_url

    if args.watch and args.json:
        raise InvalidInput("queues: --watch draws for people; for JSON, run --json repeatedly")
    client = _redis(settings)

    def take() -> dict[str, Any]:
        try:
            return snapshot(client, settings)
        except redis.RedisError as error:
            raise Unavailable(
                f"cannot reach the broker at {redact(resolve_redis_url(settings))} "
                f"({type(error).__name__}); check that Redis (or jobordre up) is running"
            ) from None

    try:
        if args.watch:
            frame = watch(take, interval_s=args.interval, count=args.count)
        elif args.json:
            emit(take(), True, "")
            return 0
        else:
            from rich.console import Console

            frame = render(take())
            Console().print(frame)
        if args.save_svg:
            save_svg(frame, args.save_svg)
    finally:
        client.close()
    return 0


def _health(args: argparse.Namespace, settings: Settings) -> int:
    from workers.ops.health import health

    report = health(settings, min_workers=args.min_workers, outbox_max_age_s=args.outbox_max_age_s)
    human = "\n".join(
        f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}" for c in report["checks"]
    )
    emit(report, args.json, human)
    return 0 if report["healthy"] else 1


def _by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        metavar="OPERATOR",
        help="your name for the audit log (default: your login name)",
    )


def add_commands(commands: Any) -> None:
    """Add ``jobordre dead ...``, ``jobordre queues`` and ``jobordre health``."""
    p = commands.add_parser("queues", help="queue depths, throughput and workers")
    p.add_argument("--watch", action="store_true", help="redraw live until Ctrl+C")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between redraws")
    p.add_argument("--count", type=int, help="with --watch: stop after this many redraws")
    p.add_argument("--save-svg", metavar="FILE", help="also save the (last) picture as SVG")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_queues)
    p = commands.add_parser("health", help="exit 0 if broker, store, workers and outbox are fine")
    p.add_argument("--min-workers", type=int, default=1, help="workers that must be alive")
    p.add_argument(
        "--outbox-max-age-s",
        type=float,
        default=60.0,
        help="longest an event may wait for the relay, in seconds",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_health)
    dead = commands.add_parser("dead", help="dead letters: what could not be processed")
    deads = dead.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = deads.add_parser("list", help="list dead letters, newest first (reads the store)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--source", choices=SOURCES)
    p.add_argument("--pending", action="store_true", help="only those not retried yet")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_dead_list)
    p = deads.add_parser("show", help="one dead letter with its reason and traceback")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_dead_show)
    p = deads.add_parser("retry", help="put dead letters back on their queues")
    p.add_argument("ids", type=int, nargs="*", metavar="ID")
    p.add_argument("--all", action="store_true", help="every dead letter not retried yet")
    _by(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_dead_retry)
    p = deads.add_parser("purge", help="delete dead letters by id, or older than a duration")
    p.add_argument("ids", type=int, nargs="*", metavar="ID")
    p.add_argument("--older-than", metavar="D", help="e.g. 90d, 12h, 30m")
    _by(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_dead_purge)
    p = deads.add_parser("audit", help="who retried or purged what, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_dead_audit)
