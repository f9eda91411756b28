"""The domain model of SPEC.md as pydantic v2 models: job orders, placements, the log.

Input models (``OrderDraft``, ``OrderPatch``) forbid unknown fields; identifiers are
checked by :mod:`shared.identifiers`. Output models are what callers receive as JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared import identifiers
from shared.errors import InvalidInput


class OrderStatus(StrEnum):
    """The four statuses of R3."""

    PROCESSING = "processing"
    INACTIVATED = "inactivated"
    CLOSED_FILLED = "closed_filled"
    CLOSED_EXPIRED = "closed_expired"


class JobType(StrEnum):
    """Kinds of job order; employers through JobAG register ``ordinary`` only (R1)."""

    ORDINARY = "ordinary"
    WAGE_SUBSIDY = "wage_subsidy"
    COMPANY_PLACEMENT = "company_placement"
    FLEX_JOB = "flex_job"
    APPRENTICE = "apprentice"
    JOB_ROTATION = "job_rotation"
    UTILITY_WORK = "utility_work"


class Origin(StrEnum):
    """The channel an order came in through."""

    JOBAG = "jobag"
    JOBCENTRE = "jobcentre"
    AKASSE = "akasse"


class PlacementStatus(StrEnum):
    """A person's status on one order."""

    PLACED = "placed"
    INTERVIEW = "interview"
    HIRED = "hired"
    NOT_HIRED = "not_hired"
    DECLINED = "declined"
    NO_SHOW = "no_show"
    WITHDRAWN = "withdrawn"


PrincipalKind = Literal["jobcentre", "akasse", "employer", "system", "star"]

#: Principals with no id: the foundation's scheduler (``system``) and its data-protection
#: role (``star``, STAR as controller of the data foundation: it answers a citizen's
#: access request with the whole history, which no organisation may see).
SINGLETON_PRINCIPALS: tuple[PrincipalKind, ...] = ("system", "star")

_AKASSE_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """An organisation acting on the foundation: ``jobcentre:101``, ``employer:<cvr>``..."""

    kind: PrincipalKind
    id: str

    @classmethod
    def parse(cls, text: str, field: str = "principal") -> Principal:
        """Parse ``kind:id``; raises :class:`InvalidInput` naming the expected forms."""
        if not isinstance(text, str):
            raise InvalidInput(f"{field}: must be a string", field=field)
        for singleton in SINGLETON_PRINCIPALS:
            if text == singleton:
                return cls(singleton, "")
        kind, sep, ident = text.partition(":")
        if sep:
            if kind == "jobcentre":
                return cls("jobcentre", identifiers.validate_municipality(ident, field))
            if kind == "employer":
                return cls("employer", identifiers.validate_cvr(ident, field))
            if kind == "akasse" and _AKASSE_CODE.match(ident):
                return cls("akasse", ident)
        raise InvalidInput(
            f"{field}: must be jobcentre:<kommunekode>, akasse:<code>, employer:<cvr>, "
            "system or star",
            field=field,
        )

    @property
    def is_authority(self) -> bool:
        """Jobcentres and a-kasser: the organisations that place people."""
        return self.kind in ("jobcentre", "akasse")

    def __str__(self) -> str:
        return self.kind if self.kind in SINGLETON_PRINCIPALS else f"{self.kind}:{self.id}"


#: Validation context flag: the document is one the store wrote itself. Its identifiers
#: were checked when it came in, and only :meth:`JobOrder.from_stored` sets the flag (a
#: client's input is validated without any context), so the checks are not run again.
STORED = "stored"


def _checked(check: Callable[[str, str], str], field: str) -> AfterValidator:
    """Run an identifier check inside pydantic, keeping its message and hiding the value."""

    def run(value: str, info: ValidationInfo) -> str:
        if info.context is not None and info.context.get(STORED) is True:
            return value
        try:
            return check(value, field)
        except InvalidInput as error:
            raise PydanticCustomError("invalid_identifier", error.message) from None

    return AfterValidator(run)


#: Control characters a single line of text never holds (C0, DEL, C1): an escape sequence
#: in a title would clear a caseworker's terminal, plant a link, or fake a status line.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The same, but for text of several lines: tab, line feed and carriage return are layout.
_CONTROLS_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]")


def _plain(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    """Refuse text holding a control character (the error names the field, not the value)."""

    def run(value: str, info: ValidationInfo) -> str:
        if info.context is not None and info.context.get(STORED) is True:
            return value
        if pattern.search(value) is not None:
            raise PydanticCustomError(
                "control_character",
                f"holds a control character (escape, line break, ...); {allowed}",
            )
        return value

    return AfterValidator(run)


#: A validator for text of one line (titles, names, addresses, search text).
SingleLine = _plain(_CONTROLS, "send plain text on one line")
#: A validator for text of several lines (descriptions, comments, notes).
MultiLine = _plain(_CONTROLS_BUT_LAYOUT, "send plain text: tabs and line breaks only")

Cvr = Annotated[str, _checked(identifiers.validate_cvr, "cvr")]
PNumber = Annotated[str, _checked(identifiers.validate_p_number, "p_number")]
Cpr = Annotated[str, _checked(identifiers.validate_cpr, "cpr")]
MunicipalityCode = Annotated[str, _checked(identifiers.validate_municipality, "municipality")]
Postcode = Annotated[str, _checked(identifiers.validate_postcode, "postcode")]
Text = Annotated[str, Field(min_length=1, max_length=200), SingleLine]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Employer(_Input):
    cvr: Cvr
    p_number: PNumber | None = None


class Address(_Input):
    street: Text
    postcode: Postcode
    city: Text
    municipality: MunicipalityCode


class Contact(_Input):
    name: Text
    phone: Annotated[str, Field(pattern=r"^\+?[0-9 ]{8,15}$")] | None = None
    email: (
        Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254), SingleLine]
        | None
    ) = None


class Occupation(_Input):
    """DISCO-08 code and/or ESCO URI; at least one."""

    disco: Annotated[str, Field(pattern=r"^[0-9]{4,6}$")] | None = None
    esco_uri: (
        Annotated[str, Field(pattern=r"^http://data\.europa\.eu/esco/occupation/[0-9a-f-]+$")]
        | None
    ) = None
    label: Annotated[str, Field(max_length=200), SingleLine] | None = None

    @model_validator(mode="after")
    def _one_code(self) -> Occupation:
        if self.disco is None and self.esco_uri is None:
            raise PydanticCustomError("missing_code", "give disco (DISCO-08 code) or esco_uri")
        return self


Title = Annotated[str, Field(min_length=1, max_length=100), SingleLine]
Description = Annotated[str, Field(max_length=5000), MultiLine]
Positions = Annotated[int, Field(ge=1, le=10_000)]
Hours = Annotated[float, Field(gt=0, le=80)]
MaxReferrals = Annotated[int, Field(ge=1, le=10_000)]
InternalComment = Annotated[str, Field(max_length=5000), MultiLine]


class OrderDraft(_Input):
    """ORDER.json: what a caller sends to register a job order."""

    title: Title
    description: Description = ""
    occupation: Occupation
    job_type: JobType = JobType.ORDINARY
    positions: Positions = 1
    hours_per_week: Hours
    employer: Employer
    address: Address
    contact: Contact
    placement_deadline: date
    max_referrals: MaxReferrals | None = None
    internal_comment: InternalComment | None = None


class OrderPatch(_Input):
    """PATCH.json: the fields to change; absent fields stay as they are."""

    title: Title | None = None
    description: Description | None = None
    occupation: Occupation | None = None
    job_type: JobType | None = None
    positions: Positions | None = None
    hours_per_week: Hours | None = None
    employer: Employer | None = None
    address: Address | None = None
    contact: Contact | None = None
    placement_deadline: date | None = None
    max_referrals: MaxReferrals | None = None
    internal_comment: InternalComment | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> OrderPatch:
        if not self.model_fields_set:
            raise PydanticCustomError("empty_patch", "the patch changes nothing: name a field")
        return self


class JobOrder(BaseModel):
    """A job order as the foundation holds it and returns it."""

    id: int
    title: str
    description: str
    occupation: Occupation
    job_type: JobType
    positions: int
    hours_per_week: float
    employer: Employer
    address: Address
    contact: Contact
    placement_deadline: date
    max_referrals: int | None
    internal_comment: str | None
    origin: Origin
    registered_by: str
    processing_by: list[str]
    status: OrderStatus
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_stored(cls, doc: str | bytes) -> JobOrder:
        """An order from a document the store wrote (``orders.doc``, ``events.order_doc``).

        Its CVR, P-number, postcode and municipality were checked when the order came in,
        and every change since went through the same checks: the identifier checks are
        skipped (the types and shapes are still parsed). Never for a client's input.
        """
        return cls.model_validate_json(doc, context={STORED: True})


class Placement(BaseModel):
    """One person put forward on one order. ``cpr`` is ``None`` where the caller may not see it."""

    id: int
    order_id: int
    cpr: str | None
    masked: bool
    placed_by: str
    caseworker: str | None
    referral: bool
    status: PlacementStatus
    note: str | None
    created_at: datetime
    updated_at: datetime


class LogEntry(BaseModel):
    """One line of the placement log (formidlingslog): append-only."""

    id: int
    order_id: int
    placement_id: int
    at: datetime
    organisation: str
    caseworker: str | None
    from_status: PlacementStatus | None
    to_status: PlacementStatus
    note: str | None


def invalid_input_from(error: Any) -> InvalidInput:
    """Turn a pydantic ``ValidationError`` into :class:`InvalidInput` without echoing values.

    pydantic puts the rejected input into its messages; a CPR number must never reach an
    error, so only the location and the rule are kept.
    """
    problems: list[str] = []
    fields: list[str] = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in item["loc"]) or "document"
        fields.append(location)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field; see SPEC.md for the field names"
        elif item["type"] == "missing":
            message = "required field is missing"
        problems.append(f"{location}: {message}")
    return InvalidInput("; ".join(problems), field=fields[0] if len(fields) == 1 else None)
