"""Keep CPR numbers out of every text jobordre writes: logs, errors, tracebacks, dead letters.

Validators never echo a CPR, and envelopes are masked before they are stored as dead
letters; this module is the last line: a log formatter that blanks anything shaped like a
CPR number (six digits, an optional dash, four digits) in the finished line, traceback and
third-party messages included (Dramatiq logs a failed message with its arguments).
"""

from __future__ import annotations

import logging
import re

#: Six digits, an optional dash, four digits, not inside a longer number.
CPR_PATTERN = re.compile(r"(?<!\d)\d{6}-?\d{4}(?!\d)")
#: What a CPR-shaped number is replaced with.
CPR_MASK = "**********"


def redact_cpr(text: str) -> str:
    """``text`` with every CPR-shaped number replaced by :data:`CPR_MASK`."""
    return CPR_PATTERN.sub(CPR_MASK, text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never contains a CPR-shaped number."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_cpr(super().format(record))
