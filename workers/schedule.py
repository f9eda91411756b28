"""Scheduled work: the placement-deadline expiry job (R3d).

Every worker process asks for the job once per ``expiry_interval_ms``, with a command id
named after the period: however many processes ask, the ledger applies the period's job
once, and the job itself closes each expired order in one transaction.
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
    """Enqueue the expiry job now and once per period until ``stop`` is set."""
    client = Client(settings, "system", url=url, key=key)
    try:
        while True:
            try:
                client.send(
                    CommandKind.EXPIRE_ORDERS,
                    {},
                    command_id=expiry_command_id(time.time(), settings.expiry_interval_ms),
                )
            except Exception:
                logger.warning("could not enqueue the expiry job", exc_info=True)
            if stop.wait(settings.expiry_interval_ms / 1000):
                return
    finally:
        client.close()
