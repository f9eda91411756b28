"""``jobordre placement ...``: placements and the placement log (S4–S6)."""

from __future__ import annotations

import argparse
from typing import Any

from shared.commands import CommandKind
from shared.models import PlacementStatus
from workers.cli.common import Parser, acting, read_cpr


def _placement_register(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    payload: dict[str, Any] = {
        "order_id": a.order_id,
        "cpr": read_cpr(a.cpr),
        "referral": a.referral,
    }
    if a.note is not None:
        payload["note"] = a.note
    return CommandKind.REGISTER_PLACEMENT, payload


def _placement_status(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    payload: dict[str, Any] = {
        "order_id": a.order_id,
        "placement_id": a.placement_id,
        "status": a.status,
    }
    if a.note is not None:
        payload["note"] = a.note
    return CommandKind.CHANGE_PLACEMENT_STATUS, payload


def _placement_log(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.PLACEMENT_LOG, {"order_id": a.order_id}


def add_commands(commands: Any) -> None:
    """Add ``jobordre placement register|status|log``."""
    placement = commands.add_parser("placement", help="placements and the placement log (S4–S6)")
    placements = placement.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = placements.add_parser("register", help="register a placement (formidling)")
    p.add_argument("order_id", type=int)
    p.add_argument("--cpr", required=True, help="the person's CPR, or - to read it from stdin")
    p.add_argument("--referral", action="store_true", help="a referral (henvisning)")
    p.add_argument("--note")
    acting(p, _placement_register)
    p = placements.add_parser("status", help="change a person's status on an order")
    p.add_argument("order_id", type=int)
    p.add_argument("placement_id", type=int)
    p.add_argument("status", choices=[s.value for s in PlacementStatus])
    p.add_argument("--note")
    acting(p, _placement_status)
    p = placements.add_parser("log", help="the placement log (formidlingslog) of an order")
    p.add_argument("order_id", type=int)
    acting(p, _placement_log)
