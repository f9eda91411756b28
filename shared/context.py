"""What every operation gets: the transaction, who acts, and when."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from shared.models import Principal


@dataclass(frozen=True, slots=True)
class Context:
    """One command being applied inside one SQLite transaction."""

    conn: sqlite3.Connection
    who: Principal
    at: datetime
    command_id: str | None = None
    caseworker: str | None = None
