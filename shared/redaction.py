"""Keep personal data out of every text jobordre writes: logs, errors, tracebacks, headers.

Validators never echo a CPR, and envelopes are masked before they are stored as dead
letters; this module is the last line:

* :func:`redact_cpr` blanks anything shaped like a CPR number (six digits, maybe split by
  dots or spaces, then an optional dash, en or em dash, space, slash or dot, then four
  digits) in a finished text;
* :func:`escape_controls` makes C0/C1 control characters visible (``\\x1b``) in text bound
  for a terminal, so a stored value cannot clear a screen, plant a link or fake a line;
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

#: The dashes people type or word processors substitute for ``-``.
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2212"
#: A CPR number as people write it: DDMMYY, or DD.MM.YY, or DDMM YY, then an optional
#: separator (a dash of any kind, a space or no-break space, a slash or a dot), then four
#: digits. Not inside a longer number or a run
#: of hex digits, and not a group of a dashed hex id (a UUID command id's digits stay).
CPR_PATTERN = re.compile(
    r"(?<![0-9A-Fa-f])(?<![0-9A-Fa-f]-)"
    r"(?:\d{6}|\d{2}\.\d{2}\.\d{2}|\d{4} \d{2})"
    rf"[-{_DASHES} \u00a0/.]?"
    r"\d{4}"
    r"(?![0-9A-Fa-f])(?!-[0-9A-Fa-f])"
)
#: What a CPR-shaped number is replaced with.
CPR_MASK = "**********"
#: pydantic's echo of the offending value in a ValidationError's text, up to its type.
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.MULTILINE)
#: What replaces a payload in a log line.
PAYLOAD_MASK = "<withheld>"


def redact_cpr(text: str) -> str:
    """``text`` with every CPR-shaped number replaced by :data:`CPR_MASK`."""
    return CPR_PATTERN.sub(CPR_MASK, text)


#: C0 and C1 control characters and DEL: what a terminal may act on.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written out (``\\x1b``, ``\\n``): for a
    terminal, where a stored value from before controls were refused must stay inert."""
    return CONTROL_CHARACTERS.sub(lambda match: repr(match.group())[1:-1], text)


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
