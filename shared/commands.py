"""The commands jobordre accepts (S1–S5): their kinds and payloads.

A command travels inside an :class:`shared.envelope.Envelope`; the payload is validated
against the model its kind names before anything is read or written.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from shared.events import Cursor
from shared.models import (
    Cpr,
    JobType,
    MultiLine,
    MunicipalityCode,
    OrderDraft,
    OrderPatch,
    OrderStatus,
    PlacementStatus,
    SingleLine,
)
from shared.search import MAX_OFFSET

#: The largest id either engine stores (SQLite's INTEGER, PostgreSQL's bigint): a larger
#: one is refused as a validation error naming its field, never met as an overflow.
MAX_ID = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Note = Annotated[str, Field(max_length=2000), MultiLine]


def _cursor(value: object) -> str:
    if isinstance(value, int | str):
        try:
            cursor = Cursor.parse(value)
        except ValueError:
            pass
        else:
            if cursor.seq <= MAX_ID:
                return str(cursor)
    raise PydanticCustomError(
        "cursor", "not a cursor: give the `cursor` of the last event read (or 0 for all)"
    )


#: A cursor into the event log: ``<epoch>:<seq>``, or a bare seq (the older format).
Since = Annotated[str, BeforeValidator(_cursor)]


class CommandKind(StrEnum):
    """Every command kind; the value is also the Dramatiq actor name."""

    REGISTER_ORDER = "register_order"
    UPDATE_ORDER = "update_order"
    CHANGE_ORDER_STATUS = "change_order_status"
    SEARCH_ORDERS = "search_orders"
    GET_ORDER = "get_order"
    ORDER_CHANGES = "order_changes"
    REGISTER_PLACEMENT = "register_placement"
    CHANGE_PLACEMENT_STATUS = "change_placement_status"
    PLACEMENT_LOG = "placement_log"
    TAKE_ORDER = "take_order"
    RELEASE_ORDER = "release_order"
    EXPIRE_ORDERS = "expire_orders"
    INBOX = "inbox"
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    FOLLOWING = "following"
    AUDIT_PERSON = "audit_person"
    ANONYMISE_PLACEMENTS = "anonymise_placements"
    COMMAND_RESULT = "command_result"

    @property
    def writes(self) -> bool:
        """Whether the command changes the store (and so goes through the ledger)."""
        return self in _WRITES


_WRITES = frozenset(
    {
        CommandKind.REGISTER_ORDER,
        CommandKind.UPDATE_ORDER,
        CommandKind.CHANGE_ORDER_STATUS,
        CommandKind.REGISTER_PLACEMENT,
        CommandKind.CHANGE_PLACEMENT_STATUS,
        CommandKind.TAKE_ORDER,
        CommandKind.RELEASE_ORDER,
        CommandKind.EXPIRE_ORDERS,
        CommandKind.FOLLOW,
        CommandKind.UNFOLLOW,
        CommandKind.ANONYMISE_PLACEMENTS,
    }
)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class RegisterOrder(_Payload):
    order: OrderDraft


class UpdateOrder(_Payload):
    order_id: Id
    expected_version: Id
    patch: OrderPatch


class ChangeOrderStatus(_Payload):
    order_id: Id
    status: OrderStatus
    expected_version: Id | None = None
    note: Note | None = None


class SearchOrders(_Payload):
    text: Annotated[str, Field(max_length=200), SingleLine] | None = None
    municipality: MunicipalityCode | None = None
    status: OrderStatus | None = None
    job_type: JobType | None = None
    employer: Annotated[str, Field(pattern=r"^[0-9]{8}$")] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 20
    #: At most :data:`shared.search.MAX_OFFSET`: a deeper page costs in proportion.
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET)] = 0


class GetOrder(_Payload):
    order_id: Id


class OrderChanges(_Payload):
    since: Since = "0"
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class RegisterPlacement(_Payload):
    order_id: Id
    cpr: Cpr
    referral: bool = False
    note: Note | None = None


class ChangePlacementStatus(_Payload):
    order_id: Id
    placement_id: Id
    status: PlacementStatus
    note: Note | None = None


class PlacementLog(_Payload):
    order_id: Id


class TakeOrder(_Payload):
    """Take an order into processing (R3a): the organisation joins ``processing_by``."""

    order_id: Id


class ReleaseOrder(_Payload):
    """Stop processing an order: the organisation leaves ``processing_by``."""

    order_id: Id


class ExpireOrders(_Payload):
    """Close every order whose placement deadline is before ``today`` (R3d; system only)."""

    today: date | None = None


class Inbox(_Payload):
    since: Since = "0"
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    #: Only the headers (no order, no placement log): what a watcher such as the desktop
    #: notifier needs, and no read of anyone's personal data for the access log.
    headers_only: bool = False


Caseworker = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]


class Follow(_Payload):
    """What a caseworker follows: one order, every order of an employer, or every order
    where the caseworker's organisation placed someone. Exactly one of them."""

    caseworker: Caseworker
    order_id: Id | None = None
    employer: Annotated[str, Field(pattern=r"^[0-9]{8}$")] | None = None
    placements: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> Follow:
        named = [self.order_id is not None, self.employer is not None, self.placements]
        if sum(named) != 1:
            raise PydanticCustomError(
                "one_target", "name exactly one of order_id, employer or placements"
            )
        return self


class Following(_Payload):
    caseworker: Caseworker


class AuditPerson(_Payload):
    """A citizen's access request: who read or changed this person's data."""

    cpr: Cpr


class AnonymisePlacements(_Payload):
    """Remove the person from placements of orders closed this many days ago (system)."""

    retention_days: Annotated[int, Field(ge=0, le=36_500)]


class CommandResult(_Payload):
    """The stored result of one of the caller's own earlier write commands."""

    command_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{8,100}$")]


#: The payload model of each command kind.
PAYLOADS: dict[CommandKind, type[_Payload]] = {
    CommandKind.REGISTER_ORDER: RegisterOrder,
    CommandKind.UPDATE_ORDER: UpdateOrder,
    CommandKind.CHANGE_ORDER_STATUS: ChangeOrderStatus,
    CommandKind.SEARCH_ORDERS: SearchOrders,
    CommandKind.GET_ORDER: GetOrder,
    CommandKind.ORDER_CHANGES: OrderChanges,
    CommandKind.REGISTER_PLACEMENT: RegisterPlacement,
    CommandKind.CHANGE_PLACEMENT_STATUS: ChangePlacementStatus,
    CommandKind.PLACEMENT_LOG: PlacementLog,
    CommandKind.TAKE_ORDER: TakeOrder,
    CommandKind.RELEASE_ORDER: ReleaseOrder,
    CommandKind.EXPIRE_ORDERS: ExpireOrders,
    CommandKind.INBOX: Inbox,
    CommandKind.FOLLOW: Follow,
    CommandKind.UNFOLLOW: Follow,
    CommandKind.FOLLOWING: Following,
    CommandKind.AUDIT_PERSON: AuditPerson,
    CommandKind.ANONYMISE_PLACEMENTS: AnonymisePlacements,
    CommandKind.COMMAND_RESULT: CommandResult,
}
