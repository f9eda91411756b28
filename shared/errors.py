"""The one error hierarchy of jobordre.

Every error a caller can get has a stable ``code`` (part of the public command-line
contract, see the README) and a message that says what was wrong and what to do. Messages
never contain a CPR number: validators name the field, never echo its value.

Every exception jobordre raises on purpose is in this tree (code in brackets, inherited
where none is given; tests/shared/test_error_tree.py keeps the drawing complete)::

    JobordreError [error]
    ├── InvalidInput [validation_error]
    │   └── CommandIdReused
    ├── Forbidden [forbidden]
    │   └── NotAuthenticated
    ├── NotFound [not_found]
    ├── VersionConflict [version_conflict]
    ├── InvalidTransition [invalid_transition]
    ├── Unavailable [unavailable] (retryable)
    │   ├── LateFailure
    │   └── ReplicationUnconfirmed      workers/transport/broker.py
    ├── AlreadyRunning
    └── DeliveryFailed                  notifier/backend.py

The last three never reach a client as such: the client turns ReplicationUnconfirmed
into an Unavailable that says what to do, ``jobordre up`` and the notifier report
AlreadyRunning and exit, and the notifier falls back to its terminal on DeliveryFailed.
(Private control-flow signals, such as the group commit's ``_RolledBack``, are not errors
and are not in the tree.)
"""

from __future__ import annotations

from typing import Any, ClassVar


class JobordreError(Exception):
    """Base of every error jobordre raises on purpose."""

    #: Stable error code printed as ``{"error": {"code": ...}}``; never renamed.
    code: ClassVar[str] = "error"
    #: Whether the command that raised it may succeed if simply tried again.
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        #: Accesses to personal data the refusal itself reveals (``shared.access.Access``);
        #: the foundation logs them with the rejection.
        self.accesses: list[Any] = []

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"code", "message"}`` plus ``field`` when one field is at fault."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> JobordreError:
        """Rebuild the error a worker reported, as the subclass its code names."""
        error_class = ERROR_CLASSES.get(str(body.get("code")), JobordreError)
        return error_class(str(body.get("message", "")), field=body.get("field"))


class InvalidInput(JobordreError):
    """The caller sent something malformed: a bad field, an unknown field, a bad id."""

    code = "validation_error"


class CommandIdReused(InvalidInput):
    """A command id arrived again with a different command: ids must be fresh per command."""


class Forbidden(JobordreError):
    """The principal may not do this (SPEC.md, "who may do what"), or could not be trusted."""

    code = "forbidden"


class NotAuthenticated(Forbidden):
    """The command's signature is missing, wrong or expired: it is not the organisation's."""


class NotFound(JobordreError):
    """The job order or placement does not exist, or is not visible to the caller."""

    code = "not_found"


class VersionConflict(JobordreError):
    """The order changed since the caller read it: fetch it again and reapply the change."""

    code = "version_conflict"


class InvalidTransition(JobordreError):
    """The status change is not allowed from the current status."""

    code = "invalid_transition"


class Unavailable(JobordreError):
    """The broker, a worker or the store could not be reached in time. Safe to resend."""

    code = "unavailable"
    retryable = True


class LateFailure(Unavailable):
    """A write transaction's statement or check failed after its command's savepoint was
    released without waiting (PostgreSQL, :attr:`shared.store.interface.Tx.settle_each`
    False): it cannot be pinned on one command, so the transaction is rolled back and done
    again with each command settled (:class:`shared.foundation.Foundation` does)."""


class AlreadyRunning(JobordreError):
    """Another process holds the lock this one needs: the ``jobordre up`` of the same home
    (the message is its broker URL, if known) or the notifier of the same caseworker;
    ``pid`` is its process id (0 if unknown)."""

    def __init__(self, message: str, *, pid: int = 0) -> None:
        super().__init__(message)
        self.pid = pid


#: Error classes by their public code.
ERROR_CLASSES: dict[str, type[JobordreError]] = {
    cls.code: cls
    for cls in (InvalidInput, Forbidden, NotFound, VersionConflict, InvalidTransition, Unavailable)
}
