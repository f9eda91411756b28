"""Keep personal data out of every text jobordre writes: logs, errors, tracebacks, headers.

Validators never echo a CPR, and envelopes are masked before they are stored as dead
letters; this module is the last line:

* :func:`redact_cpr` blanks anything shaped like a CPR number (six digits, then an optional
  dash, en or em dash or space, then four digits) in a finished text;
* :class:`RedactingFormatter` is the log formatter of every process. Beyond CPR-shaped
  numbers it keeps *payloads* out of log lines: a queued message passed as a log argument
  (Dramatiq logs "Failed to process message %s" with the message, whose text holds the
  whole command: names, phone numbers, e-mails, notes, internal comments) is logged as its
  actor and id only, and pydantic's ``input_value=...`` is cut from exception texts.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol, runtime_checkable

#: Six digits, an optional separator (ASCII dash, the Unicode dashes people type or word
#: processors substitute, a space or no-break space), four digits; not inside a longer
#: number.
CPR_PATTERN = re.compile(r"(?<!\d)\d{6}[-\u2010\u2011\u2012\u2013\u2014\u2212 \u00a0]?\d{4}(?!\d)")
#: What a CPR-shaped number is replaced with.
CPR_MASK = "**********"
#: pydantic's echo of the offending value in a ValidationError's text, up to its type.
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.MULTILINE)
#: What replaces a payload in a log line.
PAYLOAD_MASK = "<withheld>"


def redact_cpr(text: str) -> str:
    """``text`` with every CPR-shaped number replaced by :data:`CPR_MASK`."""
    return CPR_PATTERN.sub(CPR_MASK, text)


@runtime_checkable
class _QueuedMessage(Protocol):
    """A Dramatiq Message or MessageProxy, duck-typed so the domain core needs no broker
    import; its ``str()`` is the actor call with every argument."""

    message_id: str
    actor_name: str
    args: tuple[Any, ...]


def _without_payload(value: object) -> object:
    if isinstance(value, _QueuedMessage):
        return f"{value.actor_name}[{value.message_id}]"
    return value


def withhold_payloads(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of ``record`` whose arguments name queued messages instead of printing them;
    ``record`` itself when it has no arguments and no exception (a job's line): the copy
    costs more than the rest of its formatting."""
    args: Any = record.args
    if not args and record.exc_info is None and record.exc_text is None:
        return record
    if isinstance(args, tuple):
        cleaned: Any = tuple(_without_payload(arg) for arg in args)
    elif isinstance(args, dict):
        cleaned = {key: _without_payload(value) for key, value in args.items()}
    else:
        cleaned = args
    copy = logging.makeLogRecord(record.__dict__)
    copy.args = cleaned
    # Formatted afresh by the caller's formatter, never from another handler's cache.
    copy.exc_text = None
    return copy


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never contains a CPR-shaped number or a message payload."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_cpr(super().format(withhold_payloads(record)))

    def formatException(self, ei: Any) -> str:
        return _INPUT_VALUE.sub(f"input_value={PAYLOAD_MASK}", super().formatException(ei))
