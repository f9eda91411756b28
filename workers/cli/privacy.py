"""``jobordre audit person`` (a citizen's access request), ``jobordre audit proof`` (the
operator's export of a person's access-log rows with the signed commands that prove them)
and ``jobordre anonymise``."""

from __future__ import annotations

import argparse
from typing import Any

from shared.commands import CommandKind
from shared.settings import Settings, get_settings
from workers.cli.common import Command, Parser, acting, emit, read_cpr


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


def _proof(args: argparse.Namespace, settings: Settings) -> int:
    from shared.audit_proof import proofs
    from shared.store import open_store
    from workers.client.credentials import foundation_key

    cpr = read_cpr(args.cpr)
    store = open_store(settings)
    try:
        with store.read() as conn:
            rows = proofs(conn, cpr, foundation_key(settings) if args.open else None)
    finally:
        store.close()
    proven = sum(1 for row in rows if row["proof"] and row["proof"]["verified"])
    emit(
        {"entries": rows, "count": len(rows), "proven": proven},
        args.json,
        "\n".join(
            [f"{len(rows)} rows, {proven} proven by a signed command"]
            + [
                f"{row['at']} {row['action']} af {row['organisation']}: "
                + (
                    "signed command verifies"
                    if row["proof"] and row["proof"]["verified"]
                    else "no proof"
                )
                for row in rows
            ]
        ),
    )
    return 0


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
    p = audits.add_parser(
        "proof",
        help="(operator) a person's access-log rows with the signed commands that prove them",
    )
    p.add_argument("cpr", metavar="CPR", help="the person's CPR, or - to read it from stdin")
    p.add_argument(
        "--open", action="store_true", help="add each payload as the foundation opened it"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_proof)
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
