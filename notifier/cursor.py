"""The notifier's cursor: the event ``seq`` up to which everything was handled, and the
``epoch`` of the event log it counts in (a file written before logs had one has none).

It lives in a small file on the caseworker's machine under ``settings.home`` (a desktop
never opens the foundation's SQLite file), one per organisation and caseworker. The file
name carries a digest of the caseworker id, not the id itself: ids can be names.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from shared.events import Cursor


def caseworker_digest(principal: str, caseworker: str) -> str:
    """What names a caseworker's files: a digest of organisation and caseworker id."""
    return hashlib.sha256(f"{principal}\0{caseworker}".encode()).hexdigest()[:16]


class CursorFile:
    """Reads and atomically replaces one cursor file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_caseworker(cls, home: Path, principal: str, caseworker: str) -> CursorFile:
        """The cursor file of ``caseworker`` of ``principal`` under ``home``."""
        digest = caseworker_digest(principal, caseworker)
        return cls(home / "notifier" / f"cursor-{digest}.json")

    def load(self) -> Cursor | None:
        """The stored cursor; ``None`` on the first run (or if the file is unreadable)."""
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            value, epoch = stored["cursor"], stored.get("epoch")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if not isinstance(value, int) or value < 0:
            return None
        return Cursor(value, epoch if isinstance(epoch, str) and epoch else None)

    def save(self, cursor: Cursor) -> None:
        """Store ``cursor``; a crash leaves the old file or the new one, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        stored: dict[str, object] = {"cursor": cursor.seq}
        if cursor.epoch:
            stored["epoch"] = cursor.epoch
        partial.write_text(json.dumps(stored), encoding="utf-8")
        os.replace(partial, self.path)
