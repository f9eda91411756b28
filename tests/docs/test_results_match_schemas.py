"""Every kind's real result has the shape its schema (docs/schemas/results) promises: one
scenario through the foundation touches every command kind, and each result, as the client
would receive it, validates against the result model the schema is generated from."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from shared import keys
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.foundation import Foundation
from shared.protocol import RESULTS, ErrorReplyBody
from shared.store import SqliteStore as Store
from tests.factories import CPR_1, order_doc

K = CommandKind
KBH = "jobcentre:101"


def strict(model: type[BaseModel]) -> type[BaseModel]:
    """The model refusing members it does not list, so an undocumented member fails too."""
    return type(model.__name__, (model,), {"model_config": ConfigDict(extra="forbid")})


@pytest.fixture
def results(tmp_path: Path) -> dict[CommandKind, Any]:
    f = Foundation(Store(tmp_path / "store.db"))
    with f.store.write() as conn:
        kbh, system = keys.create(conn, KBH, utc_now()), keys.create(conn, "system", utc_now())
    seen: dict[CommandKind, Any] = {}

    def ok(kind: CommandKind, payload: dict[str, Any], who: str = KBH) -> dict[str, Any]:
        key = system if who == "system" else kbh
        reply = f.handle(new_envelope(kind, who, payload, key=key, caseworker="mette.h"))
        assert reply["ok"], reply
        # What the client opens: the result after a round trip through JSON.
        seen[kind] = json.loads(json.dumps(reply["result"]))
        return seen[kind]

    order = ok(K.REGISTER_ORDER, {"order": order_doc()})
    oid = order["id"]
    ok(K.RELEASE_ORDER, {"order_id": oid})
    ok(K.TAKE_ORDER, {"order_id": oid})
    order = ok(
        K.UPDATE_ORDER,
        {"order_id": oid, "expected_version": order["version"] + 2, "patch": {"positions": 3}},
    )
    placement = ok(K.REGISTER_PLACEMENT, {"order_id": oid, "cpr": CPR_1, "note": "ny"})
    ok(
        K.CHANGE_PLACEMENT_STATUS,
        {
            "order_id": oid,
            "placement_id": placement["id"],
            "status": "interview",
            "note": "samtale",
        },
    )
    ok(K.PLACEMENT_LOG, {"order_id": oid})
    ok(K.SEARCH_ORDERS, {"municipality": "101"})
    ok(K.GET_ORDER, {"order_id": oid})
    ok(K.ORDER_CHANGES, {})
    ok(K.FOLLOW, {"caseworker": "mette.h", "order_id": oid})
    ok(K.FOLLOWING, {"caseworker": "mette.h"})
    ok(K.INBOX, {})
    ok(K.UNFOLLOW, {"caseworker": "mette.h", "order_id": oid})
    ok(K.AUDIT_PERSON, {"cpr": CPR_1})
    changed = new_envelope(
        K.CHANGE_ORDER_STATUS, KBH, {"order_id": oid, "status": "inactivated"}, key=kbh
    )
    assert f.handle(changed)["ok"]
    seen[K.CHANGE_ORDER_STATUS] = json.loads(json.dumps(f.handle(changed)["result"]))
    ok(K.COMMAND_RESULT, {"command_id": changed.command_id})
    ok(K.EXPIRE_ORDERS, {"today": (date.today() + timedelta(days=400)).isoformat()}, "system")
    ok(K.ANONYMISE_PLACEMENTS, {"retention_days": 0}, "system")
    return seen


def test_every_kinds_result_validates_against_its_schema_model(
    results: dict[CommandKind, Any],
) -> None:
    assert set(results) == set(CommandKind), "the scenario must touch every kind"
    for kind, result in results.items():
        strict(RESULTS[kind]).model_validate(result)


def test_the_inbox_carries_orders_and_placement_logs(results: dict[CommandKind, Any]) -> None:
    events = results[K.INBOX]["events"]
    assert {e["type"] for e in events} >= {"order_registered", "placement_log_updated"}
    assert any(e.get("log") for e in events) and any(e.get("order") for e in events)


def test_an_error_body_validates_against_its_schema_model() -> None:
    body = {"error": {"code": "not_found", "message": "job order 9 does not exist"}}
    assert ErrorReplyBody.model_validate(body).error.code == "not_found"
