"""``jobordre audit person`` (a citizen's access request) and ``jobordre anonymise``."""

from __future__ import annotations

import argparse
from typing import Any

from shared.commands import CommandKind
from shared.settings import get_settings
from workers.cli.common import Command, Parser, acting, read_cpr


def _audit(args: argparse.Namespace) -> Command:
    return CommandKind.AUDIT_PERSON, {"cpr": read_cpr(args.cpr)}


def _human_audit(result: dict[str, Any]) -> str:
    lines = [
        f"{e['at']} {e['action']} af {e['organisation']}"
        + (f" ({e['caseworker']})" if e["caseworker"] else "")
        + (f", jobordre {e['order_id']}" if e["order_id"] else "")
        for e in result["entries"]
    ]
    return "\n".join([f"{result['count']} opslag/ændringer", *lines])


def _anonymise(args: argparse.Namespace) -> Command:
    days = args.retention_days
    if days is None:
        days = get_settings().cpr_retention_days
    return CommandKind.ANONYMISE_PLACEMENTS, {"retention_days": days}


def add_commands(commands: Any) -> None:
    """Add ``audit person`` and ``anonymise``."""
    audit = commands.add_parser("audit", help="the access log of personal data")
    audits = audit.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = audits.add_parser("person", help="who read or changed a person's data")
    p.add_argument("cpr", metavar="CPR", help="the person's CPR, or - to read it from stdin")
    acting(p, _audit, human=_human_audit)
    p = commands.add_parser(
        "anonymise",
        help="remove CPR numbers from placements of orders "
        "closed long ago (runs by itself; this runs it now)",
    )
    p.add_argument(
        "--retention-days",
        type=int,
        help="days after closing (default JOBORDRE_CPR_RETENTION_DAYS)",
    )
    acting(p, _anonymise, human=lambda r: f"{r['anonymised']} formidlinger anonymiseret")
