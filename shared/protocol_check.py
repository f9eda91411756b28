"""Say offline what the foundation would refuse in a command, and why.

A command that is not authentic gets no reply at all, and a version 1 integrator's most
costly mistakes (a ``sent_at`` the worker rewrites, a principal it normalises, a missing
``caseworker: null``) showed only as a timeout. :func:`check` reads an envelope, or the
whole Dramatiq message around it, with the organisation's key file (and, to see whether
the payload opens, the foundation's), and lists every problem it finds with the field at
fault, together with the canonical bytes the signature must cover. ``jobordre protocol
check MESSAGE.json --key KEYFILE`` prints it (docs/protocol.md, first section and § 14.12).

It checks what the foundation checks before it applies a command, in both protocol
versions; it cannot know what the store holds (whether a key was revoked, whether an
order exists).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from shared import sealing, sealing_v2, signing
from shared.canonical_v2 import signed_bytes
from shared.commands import PAYLOADS, CommandKind
from shared.envelope import (
    ENVELOPE_V2_MEMBERS,
    MAX_ENVELOPE_BYTES,
    SCHEMA_VERSION,
    SCHEMA_VERSION_2,
    SENT_AT_V2,
    Envelope,
    decode_envelope,
    normalized_principal,
    signed_fields,
)
from shared.errors import InvalidInput, NotAuthenticated
from shared.models import invalid_input_from
from shared.signing import SigningKey
from shared.signing_v2 import FoundationKey, OrganisationKey, verifies


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing the foundation would refuse: the field at fault and what to do."""

    field: str
    message: str


@dataclass
class Report:
    """What :func:`check` found: no problems means the foundation would take it."""

    version: int | None = None
    problems: list[Problem] = field(default_factory=list)
    #: The canonical bytes the signature must cover (UTF-8 text), when they can be made.
    canonical: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, name: str, message: str) -> None:
        self.problems.append(Problem(name, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "version": self.version,
            "problems": [{"field": p.field, "message": p.message} for p in self.problems],
            "canonical": self.canonical,
        }


def check(
    message: str | bytes | dict[str, Any],
    key: SigningKey | OrganisationKey,
    *,
    foundation: FoundationKey | None = None,
    canonical_given: bytes | None = None,
    now: datetime | None = None,
    max_age_ms: int = 15 * 60 * 1000,
) -> Report:
    """Everything the foundation would refuse in ``message`` signed with ``key``.

    ``message`` is an envelope or a Dramatiq message holding one (JSON text or parsed).
    ``canonical_given`` is the canonical form the client computed, to compare byte by byte
    with the expected one; ``foundation`` lets a version 2 payload be opened and validated.
    """
    report = Report()
    document = _envelope_document(message, report)
    if document is None:
        return report
    version = document.get("schema_version")
    report.version = version if isinstance(version, int) else None
    if version == SCHEMA_VERSION_2:
        _check_v2(document, key, foundation, report)
    elif version == SCHEMA_VERSION:
        _check_v1(document, key, report)
    else:
        report.add(
            "schema_version",
            f"{version!r} is not a version the foundation reads ({SCHEMA_VERSION} or "
            f"{SCHEMA_VERSION_2})",
        )
        return report
    _check_time(document.get("sent_at"), now or datetime.now(UTC), max_age_ms, report)
    if canonical_given is not None and report.canonical is not None:
        _compare(report.canonical.encode(), canonical_given, report)
    return report


def _envelope_document(
    message: str | bytes | dict[str, Any], report: Report
) -> dict[str, Any] | None:
    """The envelope object in ``message`` (unwrapped from a Dramatiq message), or None."""
    document: Any = message
    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except ValueError:
            report.add("envelope", "not a JSON document")
            return None
    if isinstance(document, dict) and "actor_name" in document and "args" in document:
        args = document.get("args")
        if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], str)):
            report.add("args", "a Dramatiq message's args are a list of one string: the envelope")
            return None
        text = args[0]
        if len(text.encode()) > MAX_ENVELOPE_BYTES:
            report.add("envelope", f"larger than {MAX_ENVELOPE_BYTES} bytes of UTF-8")
        actor = document.get("actor_name")
        try:
            inner = json.loads(text)
        except ValueError:
            report.add("args", "args[0] is not JSON text of the envelope")
            return None
        if isinstance(inner, dict) and inner.get("kind") != actor:
            report.add(
                "actor_name", f"{actor!r} must equal the envelope's kind {inner.get('kind')!r}"
            )
        document = inner
    if not isinstance(document, dict):
        report.add("envelope", "must be a JSON object")
        return None
    return document


def _check_v2(
    document: dict[str, Any],
    key: SigningKey | OrganisationKey,
    foundation: FoundationKey | None,
    report: Report,
) -> None:
    if not isinstance(key, OrganisationKey):
        report.add("key_file", "a version 2 envelope is checked with a version 2 key file")
        return
    for member in ENVELOPE_V2_MEMBERS:
        if member not in document:
            report.add(member, "missing: send every member, null where there is no value")
    for member in document:
        if member not in ENVELOPE_V2_MEMBERS:
            report.add(member, "not a member of the envelope; send none but those of § 14.4")
    principal = document.get("principal")
    _check_principal_v2(principal, key, report)
    sent_at = document.get("sent_at")
    if not (isinstance(sent_at, str) and SENT_AT_V2.fullmatch(sent_at)):
        report.add(
            "sent_at",
            f"{sent_at!r} is not in the form YYYY-MM-DDTHH:MM:SS.sssZ (UTC, 3 digits of "
            "milliseconds, a capital Z)",
        )
    if document.get("key_id") != key.key_id:
        report.add("key_id", f"{document.get('key_id')!r} is not this key file's {key.key_id!r}")
    try:
        report.canonical = signed_bytes(document).decode()
    except InvalidInput as error:
        report.add("envelope", error.message)
        return
    if not verifies(document, key.public.sign_public):
        report.add(
            "signature",
            "not the Ed25519 signature (base64url, no padding, 86 characters) of the "
            "canonical bytes below under this key file's sign_private",
        )
    _check_fields(document, report)
    if foundation is None:
        if not (
            isinstance(document.get("payload"), dict) and set(document["payload"]) == {"sealed"}
        ):
            report.add("payload", 'must be {"sealed": {"enc", "ct"}}: the whole payload sealed')
        return
    try:
        opened = sealing_v2.open_payload(
            document.get("payload"),
            str(principal),
            str(document.get("command_id")),
            str(document.get("kind")),
            foundation,
        )
    except InvalidInput as error:
        report.add(error.field or "payload", error.message)
        return
    _check_opened(document, opened, report)


def _check_principal_v2(principal: Any, key: OrganisationKey, report: Report) -> None:
    try:
        normal = normalized_principal(principal)
    except InvalidInput as error:
        report.add("principal", error.message)
        return
    except TypeError:
        report.add("principal", "must be a string")
        return
    if normal != principal:
        report.add("principal", f"{principal!r} is not the normal form {normal!r}; send that")
    elif principal != key.principal:
        report.add("principal", f"{principal!r} is not the key file's {key.principal!r}")


def _check_v1(document: dict[str, Any], key: SigningKey | OrganisationKey, report: Report) -> None:
    if not isinstance(key, SigningKey):
        report.add("key_file", "a version 1 envelope is checked with a version 1 key file")
        return
    envelope = _check_fields(document, report)
    if envelope is None:
        return
    written = signed_fields(envelope)
    report.canonical = signing.canonical(written).decode()
    if envelope.principal != key.principal:
        report.add("principal", f"{envelope.principal!r} is not the key file's {key.principal!r}")
    try:
        signing.verify(written, {key.key_id: key})
    except NotAuthenticated as error:
        report.add("signature", error.message)
        # Why, most often: the worker signs what it writes back, not what was sent.
        for name in ("principal", "sent_at"):
            if written[name] != document.get(name):
                report.add(
                    name,
                    f"{document.get(name)!r} is written back as {written[name]!r} and the "
                    "signature is checked over that form: sign and send that form",
                )
        return
    try:
        opened = sealing.open_payload(envelope.payload, envelope.command_id, key)
    except NotAuthenticated as error:
        report.add("payload", error.message)
        return
    _check_opened(document, opened, report)


def _check_fields(document: dict[str, Any], report: Report) -> Envelope | None:
    """The envelope's own validation (the first problem it names), beyond the above."""
    try:
        return decode_envelope(dict(document))
    except InvalidInput as error:
        name = error.field or "envelope"
        if not any(problem.field == name for problem in report.problems):
            report.add(name, error.message)
        return None


def _check_opened(document: dict[str, Any], opened: dict[str, Any], report: Report) -> None:
    kind = document.get("kind")
    if kind not in set(CommandKind):
        return
    try:
        PAYLOADS[CommandKind(kind)].model_validate(opened)
    except ValidationError as validation:
        error = invalid_input_from(validation)
        report.add(f"payload.{error.field}" if error.field else "payload", error.message)


def _check_time(sent_at: Any, now: datetime, max_age_ms: int, report: Report) -> None:
    try:
        moment = datetime.fromisoformat(str(sent_at))
    except ValueError:
        return
    if moment.tzinfo is None:
        if not any(problem.field == "sent_at" for problem in report.problems):
            report.add("sent_at", "has no time zone; send UTC with a Z")
        return
    if moment > now + timedelta(milliseconds=signing.CLOCK_SKEW_MS):
        report.add("sent_at", "is in the future (more than 60 s ahead): check the clock")
    elif now - moment > timedelta(milliseconds=max_age_ms):
        report.add("sent_at", f"is older than {max_age_ms} ms: the command has expired")


def _compare(expected: bytes, given: bytes, report: Report) -> None:
    if expected == given:
        return
    at = next(
        (i for i, (a, b) in enumerate(zip(expected, given, strict=False)) if a != b),
        min(len(expected), len(given)),
    )
    report.add(
        "canonical",
        f"the given canonical bytes differ from the expected ones at byte {at}: expected "
        f"{expected[max(0, at - 20) : at + 20]!r}, given {given[max(0, at - 20) : at + 20]!r}",
    )
