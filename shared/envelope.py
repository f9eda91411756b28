"""The versioned message envelope every command travels in.

``command_id`` makes a command idempotent: the worker applies a command id at most once
and answers every redelivery or resend with the stored result. ``correlation_id`` ties the
logs of one user action together. The envelope is plain JSON on the queue.

One :class:`Envelope` model reads both protocol versions (``docs/protocol.md``). Version 1
is signed with HMAC over Python's ``json.dumps`` form (:mod:`shared.signing`). Version 2 is
signed with Ed25519 over the RFC 8785 form of the JSON object exactly as it travelled
(:mod:`shared.signing_v2`), so a version 2 envelope keeps that object (:attr:`Envelope.wire`)
and nothing in it is rewritten: its principal must be sent in the normal form, its
``sent_at`` in the one form ``YYYY-MM-DDTHH:MM:SS.sssZ``, its whole payload sealed to the
foundation (:mod:`shared.sealing_v2`), and every member present.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import to_jsonable_python

from shared.commands import PAYLOADS, CommandKind
from shared.errors import InvalidInput
from shared.models import Principal, SingleLine, invalid_input_from
from shared.sealing import seal_payload
from shared.sealing_v2 import seal_payload as seal_payload_v2
from shared.signing import SigningKey, signature
from shared.signing_v2 import OrganisationKey, sign

#: The envelope schema version a version 1 key writes (the oldest this code reads).
SCHEMA_VERSION = 1
#: The version a protocol 2 key writes (docs/protocol.md § 14).
SCHEMA_VERSION_2 = 2
#: Every envelope version this code reads.
SCHEMA_VERSIONS = (SCHEMA_VERSION, SCHEMA_VERSION_2)
#: Largest envelope accepted from the queue, in bytes of UTF-8 (256 kB = 262,144 bytes);
#: an order is at most ~12 kB.
MAX_ENVELOPE_BYTES = 256 * 1024
#: Most bytes one character takes in UTF-8: text shorter than a quarter of the limit is
#: within it without being encoded to count.
_MAX_UTF8_BYTES_PER_CHAR = 4
#: The one ``sent_at`` form of version 2: UTC, milliseconds, ``Z``.
SENT_AT_V2 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
#: Deepest nesting of JSON arrays/objects accepted in an envelope; an order needs 4.
MAX_DEPTH = 32

CommandId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{8,100}$")]


class Envelope(BaseModel):
    """One command on its way from a client to a worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1, 2] = 1
    kind: CommandKind
    command_id: CommandId
    principal: str
    correlation_id: Annotated[str, Field(max_length=100), SingleLine]
    sent_at: AwareDatetime
    #: The caseworker acting for the organisation, if the client names one.
    caseworker: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")] | None = None
    payload: dict[str, Any]
    #: Which of the organisation's keys signed the envelope (see :mod:`shared.signing`).
    key_id: Annotated[str, Field(max_length=64)] | None = None
    #: HMAC-SHA256 over every other field, hex.
    signature: Annotated[str, Field(max_length=128)] | None = None

    #: A version 2 envelope's JSON object as it travelled: what its signature covers.
    _wire: dict[str, Any] | None = PrivateAttr(default=None)

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str, info: ValidationInfo) -> str:
        normal = normalized_principal(value)
        if info.data.get("schema_version") == SCHEMA_VERSION_2 and normal != value:
            raise InvalidInput(
                f"principal: send the normal form {normal!r}; version 2 compares the "
                "principal as sent (docs/protocol.md § 14.3)",
                field="principal",
            )
        return normal

    @field_validator("sent_at", mode="before")
    @classmethod
    def _sent_at(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("schema_version") == SCHEMA_VERSION_2 and not (
            isinstance(value, str) and SENT_AT_V2.fullmatch(value)
        ):
            raise InvalidInput(
                "sent_at: must be exactly YYYY-MM-DDTHH:MM:SS.sssZ (UTC, 3 digits of "
                "milliseconds, a capital Z), as JavaScript's toISOString writes it",
                field="sent_at",
            )
        return value

    @property
    def wire(self) -> dict[str, Any]:
        """The envelope's JSON object: as it travelled (version 2) or as it is written."""
        return self._wire if self._wire is not None else signed_fields(self)

    @property
    def who(self) -> Principal:
        """The organisation that sent the command."""
        return Principal.parse(self.principal)

    def payload_digest(self) -> str:
        """SHA-256 of the canonical payload: a resent command id must carry the same payload."""
        canonical = json.dumps(self.payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(f"{self.kind}\n{canonical}".encode()).hexdigest()

    def to_json(self) -> str:
        """The envelope as sent on the queue."""
        if self._wire is not None:
            return json.dumps(self._wire)
        return self.model_dump_json()


#: Distinct principals whose normal form is kept: a client names one, a worker a few hundred.
PRINCIPAL_CACHE_ENTRIES = 4096


@functools.lru_cache(maxsize=PRINCIPAL_CACHE_ENTRIES)
def normalized_principal(value: str) -> str:
    """``str(Principal.parse(value))``, parsed once per distinct text (it is pure).

    A refused text raises :class:`InvalidInput` every time: an exception is never cached.
    """
    return str(Principal.parse(value))


def _fresh_id() -> str:
    """A fresh command or correlation id: a random version 4 UUID, 32 hex digits."""
    return uuid.uuid4().hex


#: The members of a version 2 envelope, every one required (``null`` where allowed).
ENVELOPE_V2_MEMBERS = (
    "schema_version",
    "kind",
    "command_id",
    "principal",
    "correlation_id",
    "sent_at",
    "caseworker",
    "payload",
    "key_id",
    "signature",
)


def sent_at_v2(moment: datetime) -> str:
    """``moment`` in version 2's one ``sent_at`` form, ``YYYY-MM-DDTHH:MM:SS.sssZ``."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def new_envelope_v2(
    kind: CommandKind,
    key: OrganisationKey,
    payload: dict[str, Any],
    *,
    command_id: str | None = None,
    correlation_id: str | None = None,
    caseworker: str | None = None,
    sent_at: datetime | None = None,
    ephemeral: bytes | None = None,
) -> Envelope:
    """A version 2 envelope from ``key``'s organisation: the whole payload sealed to the
    foundation, signed with Ed25519 over the RFC 8785 form. Ids default to fresh UUIDs
    (36-character form); ``ephemeral`` is for test vectors only."""
    command_id = command_id or str(uuid.uuid4())
    wire: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION_2,
        "kind": kind.value,
        "command_id": command_id,
        "principal": key.principal,
        "correlation_id": correlation_id or command_id,
        "sent_at": sent_at_v2(sent_at or datetime.now(UTC)),
        "caseworker": caseworker,
        "payload": seal_payload_v2(
            payload,
            key.principal,
            command_id,
            kind.value,
            key.foundation,
            ephemeral=ephemeral,
        ),
        "key_id": key.key_id,
    }
    wire["signature"] = sign(wire, key.sign_private)
    return decode_envelope(wire)


def _is_plain_json(value: Any) -> bool:
    """Whether ``value`` holds only what JSON mode leaves as it is (no recursion).

    Exact ``dict`` (string keys), ``list``, ``str``, ``int``, ``bool``,
    ``None`` and finite ``float``: pydantic's ``model_dump(mode="json")`` returns such a
    value unchanged, so it can be signed without that copy. Anything else (a tuple, a
    datetime, an enum, a str subclass, NaN, which JSON mode turns into null) is left to
    pydantic.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            for name in item:
                if type(name) is not str:
                    return False
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind is not str and kind is not int and kind is not bool and item is not None:
            return False
    return True


def signed_fields(envelope: Envelope) -> dict[str, Any]:
    """``envelope.model_dump(mode="json")``: the fields a signature covers, as JSON values.

    Built by hand when the payload is plain JSON (every command a client sends): the dump
    walks and copies the whole envelope, and this is the client's busiest step. Only
    ``sent_at`` needs converting, by pydantic itself, so it is written exactly as the
    envelope's JSON writes it.
    """
    # Only the payload can hold what JSON mode converts: the other fields are validated
    # strings, an enum, an int and a datetime, each written below as the dump writes it.
    if not _is_plain_json(envelope.payload):
        return envelope.model_dump(mode="json")
    return {
        "schema_version": envelope.schema_version,
        "kind": envelope.kind.value,
        "command_id": envelope.command_id,
        "principal": envelope.principal,
        "correlation_id": envelope.correlation_id,
        "sent_at": to_jsonable_python(envelope.sent_at),
        "caseworker": envelope.caseworker,
        "payload": envelope.payload,
        "key_id": envelope.key_id,
        "signature": envelope.signature,
    }


def new_envelope(
    kind: CommandKind,
    principal: str,
    payload: dict[str, Any],
    *,
    command_id: str | None = None,
    correlation_id: str | None = None,
    caseworker: str | None = None,
    key: SigningKey | None = None,
    sent_at: datetime | None = None,
) -> Envelope:
    """Build an envelope for a client, signed with ``key``; ids default to fresh UUIDs."""
    fresh = _fresh_id()
    command_id = command_id or fresh
    if key is not None:
        # Sealed before signing: the signature covers what travels, and the broker never
        # holds the CPR or a note in clear.
        payload = seal_payload(payload, command_id, key)
    try:
        envelope = Envelope(
            kind=kind,
            command_id=command_id,
            principal=principal,
            correlation_id=correlation_id or fresh,
            sent_at=sent_at or datetime.now(UTC),
            caseworker=caseworker,
            payload=payload,
            key_id=key.key_id if key else None,
        )
    except ValidationError as error:
        raise invalid_input_from(error) from None
    if key is None:
        return envelope
    return envelope.model_copy(update={"signature": signature(signed_fields(envelope), key)})


def decode_envelope(data: str | bytes | dict[str, Any]) -> Envelope:
    """Decode and validate an envelope from the queue; raises :class:`InvalidInput`."""
    if isinstance(data, str | bytes):
        if len(data) > MAX_ENVELOPE_BYTES // _MAX_UTF8_BYTES_PER_CHAR and (
            len(data if isinstance(data, bytes) else data.encode()) > MAX_ENVELOPE_BYTES
        ):
            raise InvalidInput(
                f"envelope: larger than {MAX_ENVELOPE_BYTES} bytes; split the command",
                field="envelope",
            )
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidInput(
                "envelope: not a JSON document (or nested too deeply)", field="envelope"
            ) from None
    if depth(data) > MAX_DEPTH:
        raise InvalidInput(
            f"envelope: nested deeper than {MAX_DEPTH} levels; no command needs that",
            field="envelope",
        )
    if not isinstance(data, dict):
        raise InvalidInput("envelope: must be a JSON object", field="envelope")
    version = data.get("schema_version")
    if version not in SCHEMA_VERSIONS or type(version) is not int:
        raise InvalidInput(
            f"envelope.schema_version: {version!r} is not supported; this worker reads "
            f"versions {SCHEMA_VERSION} and {SCHEMA_VERSION_2}: upgrade the worker or the client",
            field="schema_version",
        )
    if version == SCHEMA_VERSION_2:
        for member in ENVELOPE_V2_MEMBERS:
            if member not in data:
                raise InvalidInput(
                    f"{member}: missing; a version 2 envelope has every member, null where "
                    "there is no value",
                    field=member,
                )
    try:
        envelope = Envelope.model_validate(data)
    except ValidationError as error:
        raise invalid_input_from(error) from None
    if version == SCHEMA_VERSION_2:
        if envelope.key_id is None or envelope.signature is None:
            raise InvalidInput("signature: a version 2 envelope is signed", field="signature")
        envelope._wire = data
    return envelope


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in a JSON value (a scalar is 0); no recursion.

    Walked level by level: each round keeps the arrays and objects of one level.
    """
    deepest, level = 0, [value]
    while True:
        level = [item for item in level if isinstance(item, dict | list)]
        if not level:
            return deepest
        deepest += 1
        children: list[Any] = []
        for item in level:
            children.extend(item.values() if isinstance(item, dict) else item)
        level = children


def parse_payload(envelope: Envelope, payload: dict[str, Any] | None = None) -> BaseModel:
    """Validate the payload (``payload``: the opened one, if given) against its kind's model.

    Raises :class:`InvalidInput`.
    """
    try:
        return PAYLOADS[envelope.kind].model_validate(
            envelope.payload if payload is None else payload
        )
    except ValidationError as error:
        raise invalid_input_from(error) from None


def mask_personal_data(value: Any) -> Any:
    """A copy of a JSON value with every ``cpr`` replaced, for dead letters and logs."""
    if isinstance(value, dict):
        return {
            key: (
                MASKED_CPR
                if key == "cpr" and item is not None
                # A scalar is itself: a call per member would cost more than the masking.
                else mask_personal_data(item)
                if isinstance(item, dict | list)
                else item
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_personal_data(item) for item in value]
    return value


#: How :func:`mask_personal_data` writes a CPR in the ledger's stored replies.
MASKED_CPR = "**********"


def one_mask_form(value: Any) -> Any:
    """A copy of a reply with every masked CPR in protocol 2's one form: ``"cpr": null,
    "masked": true`` (a stored reply's ``"**********"`` rewritten), nothing else changed."""
    if isinstance(value, list):
        return [one_mask_form(item) for item in value]
    if not isinstance(value, dict):
        return value
    copied = {key: one_mask_form(item) for key, item in value.items()}
    if copied.get("cpr") == MASKED_CPR:
        copied["cpr"] = None
        copied["masked"] = True
    return copied


#: How a member named ``cpr`` starts in ``json.dumps`` text, whatever its depth.
_CPR_MEMBER = '"cpr"'


def masked_json(value: Any) -> str:
    """``json.dumps(mask_personal_data(value))``, encoded once when nothing is masked.

    A ``cpr`` member is written ``"cpr"`` (a name needs no escaping), so text without that
    is the text of a value with nothing to mask: most replies (orders) are walked once by
    the encoder instead of twice more. Text with it (a placement, or only a value that
    reads "cpr") is masked and encoded as before.
    """
    text = json.dumps(value)
    if _CPR_MEMBER not in text:
        return text
    return json.dumps(mask_personal_data(value))
