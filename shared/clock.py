"""The one clock: what time it is, in UTC, and the type of anything that tells it.

Code that needs the time takes a :data:`Clock` (default :func:`utc_now`), so tests give it
a fixed or moving one instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: Something that tells the time: an aware datetime in UTC.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)
