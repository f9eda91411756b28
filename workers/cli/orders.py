"""``jobordre order ...``: job orders (S1–S3)."""

from __future__ import annotations

import argparse
from typing import Any

from shared.commands import CommandKind
from shared.models import JobType, OrderStatus
from workers.cli.common import Build, Command, Parser, acting, read_json


def _by_order_id(kind: CommandKind) -> Build:
    def build(args: argparse.Namespace) -> Command:
        return kind, {"order_id": args.id}

    return build


def _order_register(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.REGISTER_ORDER, {"order": read_json(a.file, "file")}


def _order_get(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.GET_ORDER, {"order_id": a.id}


def _order_search(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    payload = {
        "text": " ".join(a.text) or None,
        "municipality": a.municipality,
        "status": a.status,
        "job_type": a.job_type,
        "employer": a.employer,
        "limit": a.limit,
        "offset": a.offset,
    }
    return CommandKind.SEARCH_ORDERS, {k: v for k, v in payload.items() if v is not None}


def _order_update(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.UPDATE_ORDER, {
        "order_id": a.id,
        "expected_version": a.expected_version,
        "patch": read_json(a.file, "file"),
    }


def _order_status(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    payload: dict[str, Any] = {"order_id": a.id, "status": a.status}
    if a.expected_version is not None:
        payload["expected_version"] = a.expected_version
    if a.note is not None:
        payload["note"] = a.note
    return CommandKind.CHANGE_ORDER_STATUS, payload


def _order_changes(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.ORDER_CHANGES, {"since": a.since, "limit": a.limit}


def add_commands(commands: Any) -> None:
    """Add ``jobordre order register|get|search|update|status|take|release|changes``."""
    order = commands.add_parser("order", help="job orders (S1–S3)")
    orders = order.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = orders.add_parser("register", help="register a job order from ORDER.json")
    p.add_argument("--file", required=True, help="ORDER.json, or - for stdin")
    acting(p, _order_register)
    p = orders.add_parser("get", help="fetch one job order")
    p.add_argument("id", type=int)
    acting(p, _order_get)
    p = orders.add_parser("search", help="search job orders")
    p.add_argument("text", nargs="*", help="words that must occur (prefixes match)")
    p.add_argument("--municipality", metavar="K")
    p.add_argument("--status", choices=[s.value for s in OrderStatus])
    p.add_argument("--job-type", choices=[t.value for t in JobType])
    p.add_argument("--employer", metavar="CVR")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--offset", type=int, default=0)
    acting(p, _order_search)
    p = orders.add_parser("update", help="change fields of a job order from PATCH.json")
    p.add_argument("id", type=int)
    p.add_argument("--expected-version", type=int, required=True)
    p.add_argument("--file", required=True, help="PATCH.json, or - for stdin")
    acting(p, _order_update)
    p = orders.add_parser("status", help="inactivate, reactivate or close a job order")
    p.add_argument("id", type=int)
    p.add_argument("status", choices=[s.value for s in OrderStatus])
    p.add_argument("--expected-version", type=int)
    p.add_argument("--note")
    acting(p, _order_status)
    for name, kind, text in (
        ("take", CommandKind.TAKE_ORDER, "take a job order into processing (R3a)"),
        ("release", CommandKind.RELEASE_ORDER, "stop processing a job order"),
    ):
        p = orders.add_parser(name, help=text)
        p.add_argument("id", type=int)
        acting(p, _by_order_id(kind))
    p = orders.add_parser("changes", help="orders changed since a cursor")
    p.add_argument("--since", default="0", metavar="CURSOR")
    p.add_argument("--limit", type=int, default=100)
    acting(p, _order_changes)
