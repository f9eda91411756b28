"""What ``jobordre up`` prints on its terminal: one short line per job, for a person.

The job log is one JSON object per job (workers/worker/actors.py). ``up`` shows it as text by
default (``12:03:41  register_order by jobcentre:101: ok (14 ms)``) and as the bare JSON
lines with ``--log-format json``; ``--log-file FILE`` appends the JSON lines to a file as
well, for ops. Every line passes the CPR-redacting formatter, whatever its form.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

from shared.redaction import RedactingFormatter, redact_cpr
from workers.worker.runner import configure_logging

#: How ``up`` writes its log on the terminal.
LogFormat = Literal["text", "json"]
#: The time of day at the start of each text line.
TIME_FORMAT = "%H:%M:%S"


class JobLineFormatter(RedactingFormatter):
    """Renders a job's JSON log record as one short line; other records as they are."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s  %(message)s", datefmt=TIME_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        try:
            job = json.loads(record.getMessage())
        except ValueError:
            job = None
        if not isinstance(job, dict):
            return super().format(record)
        line = str(job.get("kind") or job.get("queue") or "?")
        if job.get("principal"):
            line += f" by {job['principal']}"
        line += f": {job.get('outcome', '?')}"
        if job.get("duration_ms") is not None:
            line += f" ({float(job['duration_ms']):.0f} ms)"
        if job.get("reason"):
            line += f" — {job['reason']}"
        return redact_cpr(self.formatTime(record, self.datefmt) + "  " + line)


def configure_up_logging(log_format: LogFormat, log_file: Path | None = None) -> None:
    """Log for a person (``text``) or for machines (``json``); ``log_file`` gets the JSON
    job lines as well."""
    configure_logging()
    if log_format == "text":
        root = logging.getLogger().handlers[0]
        root.setFormatter(RedactingFormatter("%(asctime)s  %(message)s", datefmt=TIME_FORMAT))
        jobs = logging.getLogger("jobordre.jobs").handlers[0]
        jobs.setFormatter(JobLineFormatter())
    if log_file is not None:
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(RedactingFormatter("%(message)s"))
        logging.getLogger("jobordre.jobs").addHandler(file_handler)
    # Dramatiq's own chatter (consumer restarts after a broker restart and the like) is
    # for ops; a person sees the warnings.
    if log_format == "text":
        logging.getLogger("dramatiq").setLevel(logging.WARNING)
