"""What every operation gets: the transaction, who acts, and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.access import Access
from shared.models import Principal
from shared.settings import Settings
from shared.store.interface import Tx

#: Default of ``JOBORDRE_MAX_FOLLOWS_PER_CASEWORKER``: most things one caseworker follows.
MAX_FOLLOWS: int = Settings.model_fields["max_follows_per_caseworker"].default


@dataclass(frozen=True, slots=True)
class Context:
    """One command being applied inside one SQLite transaction."""

    conn: Tx
    who: Principal
    at: datetime
    command_id: str | None = None
    caseworker: str | None = None
    #: Most things one caseworker may follow (``JOBORDRE_MAX_FOLLOWS_PER_CASEWORKER``).
    max_follows: int = MAX_FOLLOWS
    #: Reads and changes of personal data, written to the access log by the foundation.
    accesses: list[Access] = field(default_factory=list)
    #: ``at.isoformat()``, as every row the command writes stores its time: encoded once.
    stamp: str = field(init=False)

    def __post_init__(self) -> None:
        # Frozen: the one assignment goes round the dataclass's __setattr__.
        object.__setattr__(self, "stamp", self.at.isoformat())

    def accessed(self, cpr: str | None, action: str, order_id: int, placement_id: int) -> None:
        """Note that this command read or changed a person's data."""
        if cpr is not None:
            self.accesses.append(Access(cpr, action, order_id, placement_id))
