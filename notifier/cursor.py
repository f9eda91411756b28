"""The notifier's cursor: the event ``seq`` up to which everything was handled.

It lives in a small file on the caseworker's machine under ``settings.home`` (a desktop
never opens the foundation's SQLite file), one per organisation and caseworker. The file
name carries a digest of the caseworker id, not the id itself: ids can be names.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


class CursorFile:
    """Reads and atomically replaces one cursor file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_caseworker(cls, home: Path, principal: str, caseworker: str) -> CursorFile:
        """The cursor file of ``caseworker`` of ``principal`` under ``home``."""
        digest = hashlib.sha256(f"{principal}\0{caseworker}".encode()).hexdigest()[:16]
        return cls(home / "notifier" / f"cursor-{digest}.json")

    def load(self) -> int | None:
        """The stored cursor; ``None`` on the first run (or if the file is unreadable)."""
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))["cursor"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return value if isinstance(value, int) and value >= 0 else None

    def save(self, cursor: int) -> None:
        """Store ``cursor``; a crash leaves the old file or the new one, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps({"cursor": cursor}), encoding="utf-8")
        os.replace(partial, self.path)
