"""The JSON Schemas in docs/schemas are the models' own: a change to a model that is not
regenerated (``scripts/schemas``) fails here, naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.commands import CommandKind
from shared.protocol import json_schemas, render

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
GENERATED = json_schemas()


@pytest.mark.parametrize("name", sorted(GENERATED), ids=str)
def test_the_checked_in_schema_is_the_one_the_models_generate(name: str) -> None:
    path = SCHEMAS / name
    assert path.exists(), f"{name} is missing: run scripts/schemas and commit docs/schemas"
    assert path.read_text(encoding="utf-8") == render(GENERATED[name]), (
        f"docs/schemas/{name} drifted from the models: run scripts/schemas and commit"
    )


def test_no_stale_schema_is_left_behind() -> None:
    on_disk = {str(path.relative_to(SCHEMAS)) for path in SCHEMAS.rglob("*.json")}
    assert on_disk == set(GENERATED)


def test_every_kind_has_a_payload_and_a_result_schema() -> None:
    names = set(GENERATED)
    for kind in CommandKind:
        assert f"payloads/{kind.value}.json" in names
        assert f"results/{kind.value}.json" in names


@pytest.mark.parametrize(
    ("name", "required"),
    [
        pytest.param(
            "envelope.json",
            {"kind", "command_id", "principal", "correlation_id", "sent_at", "payload"},
            id="envelope",
        ),
        pytest.param("reply.json", {"v", "command_id", "ok", "key_id", "body", "mac"}, id="reply"),
        pytest.param("payloads/register_placement.json", {"order_id", "cpr"}, id="placement"),
        pytest.param("event-header.json", {"id", "seq", "type", "order_id"}, id="event"),
    ],
)
def test_a_schema_requires_what_the_protocol_document_says(name: str, required: set[str]) -> None:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    assert required <= set(schema["required"])
    assert schema.get("additionalProperties") is False or name == "event-header.json"
