"""The queue protocol, machine-readable: JSON Schemas of what travels on Redis.

``docs/protocol.md`` describes the protocol for clients in other languages; the schemas in
``docs/schemas/`` are generated from the models the code uses (the envelope, the payloads,
the event header) and from the models below, which describe the replies the operations
build as plain JSON. ``scripts/schemas`` writes them; a test fails when they drift.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.commands import PAYLOADS, CommandKind
from shared.envelope import SENT_AT_V2, CommandId, Envelope
from shared.events import EventHeader, EventType, PlacementChange
from shared.models import JobOrder, LogEntry, OrderStatus, Placement

#: JSON Schema dialect of every generated schema.
DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DramatiqMessage(_Wire):
    """A Dramatiq message as stored in the hash ``dramatiq:<queue>.msgs`` (UTF-8 JSON)."""

    queue_name: Literal["jobordre.commands", "jobordre.queries"]
    #: The command kind (the actor's name).
    actor_name: CommandKind
    #: One element: the envelope as a JSON string.
    args: list[str] = Field(min_length=1, max_length=1)
    kwargs: dict[str, Any] = {}
    #: ``redis_message_id``: the id under which the message is stored (set it to
    #: ``message_id``). Dramatiq's middleware writes its own options (``retries``...).
    options: dict[str, Any] = {}
    #: A fresh UUID (text form), unique per enqueue.
    message_id: str
    #: When the message was made, in milliseconds since the Unix epoch.
    message_timestamp: int


class ErrorBody(_Wire):
    """An error, as in ``{"error": {...}}`` on the command line."""

    code: Literal[
        "validation_error",
        "forbidden",
        "not_found",
        "version_conflict",
        "invalid_transition",
        "unavailable",
    ]
    message: str
    #: The field at fault, when there is one.
    field: str | None = None


class SealedReply(_Wire):
    """What a worker pushes onto ``<prefix>:reply:<command_id>`` (see :mod:`shared.sealing`)."""

    v: Literal[1]
    command_id: str
    ok: bool
    #: The key that signed the command, and under which the reply is sealed.
    key_id: str
    #: base64 of a 12-byte nonce and the AES-256-GCM ciphertext of the reply body.
    body: str
    #: Lowercase hex HMAC-SHA256 binding the body to the command it answers.
    mac: str = Field(pattern=r"^[0-9a-f]{64}$")


class EnvelopeV1(Envelope):
    """One command of protocol version 1, signed with HMAC-SHA256 (docs/protocol.md § 3)."""

    schema_version: Literal[1] = 1


#: A principal in its normal form, the only form protocol 2 takes (docs/protocol.md § 14.3).
PRINCIPAL_V2 = (
    r"^(jobcentre:[0-9]{3}|akasse:[a-z0-9][a-z0-9-]{0,31}|employer:[1-9][0-9]{7}|system|star)$"
)
#: base64url without padding (protocol 2's binary values).
_B64URL = r"^[A-Za-z0-9_-]+$"


class Sealed(_Wire):
    """A protocol 2 seal: an ephemeral X25519 public key and the AES-256-GCM ciphertext."""

    #: The sender's ephemeral X25519 public key, 32 bytes, base64url.
    enc: str = Field(pattern=_B64URL, min_length=43, max_length=43)
    #: Ciphertext and 16-byte tag, base64url.
    ct: str = Field(pattern=_B64URL)


class SealedPayload(_Wire):
    """A protocol 2 payload: all of it sealed to the foundation (docs/protocol.md § 14.6)."""

    sealed: Sealed


class EnvelopeV2Wire(_Wire):
    """One command of protocol version 2 as it travels: every member required, the whole
    payload sealed, signed with Ed25519 over the RFC 8785 form (docs/protocol.md § 14.4)."""

    schema_version: Literal[2]
    kind: CommandKind
    #: Unique per principal: a fresh UUID per new command, the same on a resend.
    command_id: CommandId
    principal: str = Field(pattern=PRINCIPAL_V2)
    correlation_id: str = Field(max_length=100)
    sent_at: str = Field(pattern=SENT_AT_V2.pattern)
    caseworker: str | None = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    payload: SealedPayload
    key_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: Ed25519 signature of the canonical bytes, base64url (86 characters).
    signature: str = Field(pattern=_B64URL, min_length=86, max_length=86)


class ReplyV2Wire(_Wire):
    """What a worker pushes onto ``<prefix>:replies:<principal>:<command_id>`` for a
    protocol 2 command: sealed to the client, signed by the foundation (§ 14.7)."""

    v: Literal[2]
    command_id: str
    principal: str = Field(pattern=PRINCIPAL_V2)
    #: The ``signature`` of the envelope this reply answers.
    in_reply_to: str
    #: The foundation's key that signed the reply.
    key_id: str
    body: Sealed
    #: The foundation's Ed25519 signature of the reply's RFC 8785 form, base64url.
    signature: str = Field(pattern=_B64URL, min_length=86, max_length=86)


class ResultBodyV2(_Wire):
    """The opened ``body`` of a protocol 2 reply to a command that succeeded."""

    ok: Literal[True]
    result: dict[str, Any]


class ErrorBodyV2(_Wire):
    """The opened ``body`` of a protocol 2 reply to a command that was refused."""

    ok: Literal[False]
    error: ErrorBody


class SealedFieldV1(_Wire):
    """A protocol 1 sealed ``cpr`` or ``note``: base64 of nonce, ciphertext and tag (§ 5)."""

    sealed: str


class ResultBody(_Wire):
    """The opened ``body`` of a reply with ``"ok": true``."""

    result: dict[str, Any]


class ErrorReplyBody(_Wire):
    """The opened ``body`` of a reply with ``"ok": false``."""

    error: ErrorBody


class SearchResult(_Wire):
    total: int
    results: list[JobOrder]


class PlacementLogResult(_Wire):
    order_id: int
    status: OrderStatus
    placements: list[Placement]
    entries: list[LogEntry]


class FullLog(_Wire):
    """How to fetch the whole placement log an event's change belongs to."""

    command: str
    order_id: int


class InboxEvent(_Wire):
    """One event as its reader receives it: the header (no audience) and what it carries."""

    id: str
    seq: int
    #: ``"<epoch>:<seq>"`` (see the README's "Cursors"); give it back as ``since``.
    cursor: str
    type: EventType
    at: str
    order_id: int
    title: str
    status: OrderStatus
    version: int
    processing_by: list[str]
    employer_cvr: str
    by: str
    placements: list[PlacementChange] = []
    #: For ``order_status_changed``: the status before the change (equal to ``status`` for
    #: take/release).
    previous_status: OrderStatus | None = None
    #: The identity of the event log ``seq`` counts in.
    epoch: str = ""
    #: The order as it was right after the change (not with ``headers_only``; not for
    #: ``placement_log_updated``).
    order: JobOrder | None = None
    #: The placement log as it stood after the change, masked for the reader
    #: (``placement_log_updated`` only, not with ``headers_only``).
    log: PlacementLogResult | None = None
    #: Where the whole placement log is (``placement_log_updated`` only): the event's
    #: ``log`` holds just the change.
    full_log: FullLog | None = None


class InboxResult(_Wire):
    events: list[InboxEvent]
    cursor: str
    #: The seq the page was read from, and the cursor of the log's end.
    from_seq: int | None = None
    head: str | None = None


class OrderChange(_Wire):
    cursor: str
    type: EventType
    at: str
    order_id: int
    version: int
    status: OrderStatus
    by: str
    order: JobOrder


class OrderChangesResult(_Wire):
    changes: list[OrderChange]
    cursor: str


class ExpireResult(_Wire):
    today: str
    closed: list[int]


class FollowingResult(_Wire):
    caseworker: str
    organisation: str
    orders: list[int]
    employers: list[str]
    placements_of_my_organisation: bool
    placed_orders: list[int]


class FollowResult(FollowingResult):
    """``follow``/``unfollow``: the one follow named, whether the call changed it, and how
    many the caseworker follows now; the lists of ``following`` (which gives them whole)
    cut at 100 entries each, ``truncated`` saying whether any was."""

    truncated: bool
    order_id: int | None
    employer: str | None
    placements: bool
    changed: bool
    count: int


class AccessEntry(_Wire):
    at: datetime
    organisation: str
    caseworker: str | None
    action: Literal["register", "read", "change", "anonymise", "audit"]
    order_id: int | None
    placement_id: int | None


class AuditResult(_Wire):
    entries: list[AccessEntry]
    count: int


class AnonymiseResult(_Wire):
    anonymised: int
    closed_before: str


class CommandResultResult(_Wire):
    """The stored reply of an earlier write (``reply`` is the unsealed reply, CPR masked)."""

    command_id: str
    kind: CommandKind
    outcome: Literal["ok", "rejected"]
    at: str
    reply: dict[str, Any]


#: The ``result`` of a successful reply, by command kind.
RESULTS: dict[CommandKind, type[BaseModel]] = {
    CommandKind.REGISTER_ORDER: JobOrder,
    CommandKind.UPDATE_ORDER: JobOrder,
    CommandKind.CHANGE_ORDER_STATUS: JobOrder,
    CommandKind.SEARCH_ORDERS: SearchResult,
    CommandKind.GET_ORDER: JobOrder,
    CommandKind.ORDER_CHANGES: OrderChangesResult,
    CommandKind.REGISTER_PLACEMENT: Placement,
    CommandKind.CHANGE_PLACEMENT_STATUS: Placement,
    CommandKind.PLACEMENT_LOG: PlacementLogResult,
    CommandKind.TAKE_ORDER: JobOrder,
    CommandKind.RELEASE_ORDER: JobOrder,
    CommandKind.EXPIRE_ORDERS: ExpireResult,
    CommandKind.INBOX: InboxResult,
    CommandKind.FOLLOW: FollowResult,
    CommandKind.UNFOLLOW: FollowResult,
    CommandKind.FOLLOWING: FollowingResult,
    CommandKind.AUDIT_PERSON: AuditResult,
    CommandKind.ANONYMISE_PLACEMENTS: AnonymiseResult,
    CommandKind.COMMAND_RESULT: CommandResultResult,
}


def _schema(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": DIALECT, **schema, "title": title, "description": description}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every schema of the protocol, by its path under ``docs/schemas/``."""
    schemas = {
        "dramatiq-message.json": _schema(
            DramatiqMessage, "DramatiqMessage", DramatiqMessage.__doc__ or ""
        ),
        "envelope.json": _schema(
            EnvelopeV1, "Envelope", "One command, signed (docs/protocol.md, version 1)."
        ),
        "reply.json": _schema(SealedReply, "SealedReply", SealedReply.__doc__ or ""),
        "reply-result.json": _schema(ResultBody, "ResultBody", ResultBody.__doc__ or ""),
        "reply-error.json": _schema(ErrorReplyBody, "ErrorReplyBody", ErrorReplyBody.__doc__ or ""),
        "event-header.json": _schema(
            EventHeader, "EventHeader", "The `event` field of an entry on `<prefix>:events`."
        ),
    }
    schemas.update(_v2_schemas())
    for kind in CommandKind:
        wire = _v1_wire_payload(kind)
        if wire is not None:
            schemas[f"payloads/{kind.value}.wire.json"] = wire
        schemas[f"payloads/{kind.value}.json"] = _schema(
            PAYLOADS[kind], f"{kind.value} payload", f"`payload` of a `{kind.value}` envelope."
        )
        schemas[f"results/{kind.value}.json"] = _schema(
            RESULTS[kind],
            f"{kind.value} result",
            f"`result` in the opened body of a successful `{kind.value}` reply.",
        )
    return schemas


def _v1_wire_payload(kind: CommandKind) -> dict[str, Any] | None:
    """Protocol 1's wire schema of a payload with sealed members: ``cpr`` and ``note`` as
    ``{"sealed": "<base64>"}``; None for a kind with nothing sealed (wire = opened)."""
    schema = _schema(
        PAYLOADS[kind],
        f"{kind.value} payload (wire)",
        f"`payload` of a version 1 `{kind.value}` envelope as it travels: `cpr` and `note` "
        f"sealed (§ 5). The opened form is payloads/{kind.value}.json.",
    )
    sealed = [name for name in ("cpr", "note") if name in schema.get("properties", {})]
    if not sealed:
        return None
    sealed_schema = SealedFieldV1.model_json_schema()
    for name in sealed:
        opened = schema["properties"][name]
        nullable = {"type": "null"} in opened.get("anyOf", [])
        schema["properties"][name] = (
            {"anyOf": [sealed_schema, {"type": "null"}], "title": name.capitalize()}
            if nullable
            else {**sealed_schema, "title": name.capitalize()}
        )
    return schema


def _v2_schemas() -> dict[str, dict[str, Any]]:
    """Protocol 2's schemas under ``v2/``: wire (what travels) and opened (inside a seal)."""
    schemas = {
        "v2/envelope.wire.json": _schema(
            EnvelopeV2Wire, "EnvelopeV2", EnvelopeV2Wire.__doc__ or ""
        ),
        "v2/reply.wire.json": _schema(ReplyV2Wire, "ReplyV2", ReplyV2Wire.__doc__ or ""),
        "v2/reply-result.opened.json": _schema(
            ResultBodyV2, "ResultBodyV2", ResultBodyV2.__doc__ or ""
        ),
        "v2/reply-error.opened.json": _schema(
            ErrorBodyV2, "ErrorBodyV2", ErrorBodyV2.__doc__ or ""
        ),
    }
    for kind in CommandKind:
        schemas[f"v2/payloads/{kind.value}.opened.json"] = _schema(
            PAYLOADS[kind],
            f"{kind.value} payload (opened)",
            f"The payload of a version 2 `{kind.value}` envelope once opened; on the wire it "
            "is sealed whole (v2/envelope.wire.json).",
        )
    return schemas


def render(schema: dict[str, Any]) -> str:
    """A schema file's exact content."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    """Write every schema under ``folder``, removing stale ones; returns the files written."""
    expected = json_schemas()
    for old in folder.rglob("*.json"):
        if str(old.relative_to(folder)) not in expected:
            old.unlink()
    written = []
    for name, schema in expected.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
