"""Scheduled work: the placement-deadline expiry job (R3d) and the anonymisation of
placements past their retention.

Every worker process asks for both jobs once per ``expiry_interval_ms``, with command ids
named after the period: however many processes ask, the ledger applies each period's job
once, and each job does its work in one transaction.
"""

from __future__ import annotations

import logging
import threading
import time

from shared.commands import CommandKind
from shared.settings import Settings
from shared.signing import SigningKey
from workers.client import Client

logger = logging.getLogger("jobordre.schedule")


def expiry_command_id(now_s: float, interval_ms: int) -> str:
    """The command id of the expiry job for the period ``now_s`` falls in."""
    return f"expire-orders-{int(now_s * 1000) // interval_ms}-{interval_ms}"


def request_expiry_forever(
    settings: Settings, url: str, key: SigningKey, stop: threading.Event
) -> None:
    """Enqueue the scheduled jobs now and once per period until ``stop`` is set."""
    client = Client(settings, "system", url=url, key=key)
    try:
        while True:
            try:
                period = expiry_command_id(time.time(), settings.expiry_interval_ms)
                client.send(CommandKind.EXPIRE_ORDERS, {}, command_id=period)
                client.send(
                    CommandKind.ANONYMISE_PLACEMENTS,
                    {"retention_days": settings.cpr_retention_days},
                    command_id=f"anonymise-{period}",
                )
            except Exception:
                logger.warning("could not enqueue the scheduled jobs", exc_info=True)
            if stop.wait(settings.expiry_interval_ms / 1000):
                return
    finally:
        client.close()
