"""The foundation applies each command once, in one transaction, and keeps what it rejects."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shared import keys
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.events import Cursor
from shared.foundation import Foundation
from shared.signing import SigningKey
from shared.store import SqliteStore, Store, list_dead_letters
from tests.factories import CPR_1, CPR_2, EMPLOYER_A, EMPLOYER_B, order_doc

K = CommandKind
JOBCENTRE = "jobcentre:101"
OTHER_JOBCENTRE = "jobcentre:751"
AKASSE = "akasse:3f"
EMPLOYER = f"employer:{EMPLOYER_A}"


@pytest.fixture
def foundation(any_store: Store) -> Foundation:
    """A foundation on a fresh store of each engine (SQLite, PostgreSQL)."""
    return Foundation(any_store)


def key_of(f: Foundation, principal: str) -> SigningKey:
    """The organisation's signing key, made on first use (as the operator would)."""
    with f.store.write() as conn:
        valid = keys.valid_keys(conn, principal)
        return next(iter(valid.values())) if valid else keys.create(conn, principal, utc_now())


def call(
    f: Foundation,
    principal: str,
    kind: CommandKind,
    payload: dict[str, Any],
    command_id: str | None = None,
) -> dict[str, Any]:
    envelope = new_envelope(
        kind, principal, payload, command_id=command_id, key=key_of(f, principal)
    )
    return f.handle(envelope)


def ok(f: Foundation, principal: str, kind: CommandKind, payload: dict[str, Any]) -> dict[str, Any]:
    reply = call(f, principal, kind, payload)
    assert reply["ok"], reply
    result: dict[str, Any] = reply["result"]
    return result


def error_code(f: Foundation, principal: str, kind: CommandKind, payload: dict[str, Any]) -> str:
    reply = call(f, principal, kind, payload)
    assert not reply["ok"], reply
    code: str = reply["error"]["code"]
    return code


def count(f: Foundation, table: str) -> int:
    return int(f.store.connection().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def register(f: Foundation, principal: str = JOBCENTRE, **changes: Any) -> dict[str, Any]:
    return ok(f, principal, K.REGISTER_ORDER, {"order": order_doc(**changes)})


class TestRegisterOrder:
    def test_a_jobcentre_order_starts_processing_at_version_1(self, foundation: Foundation) -> None:
        order = register(foundation)
        assert (order["status"], order["version"], order["origin"]) == (
            "processing",
            1,
            "jobcentre",
        )
        assert order["processing_by"] == [JOBCENTRE]
        assert order["registered_by"] == JOBCENTRE

    def test_an_employer_registers_through_jobag(self, foundation: Foundation) -> None:
        order = register(foundation, EMPLOYER, internal_comment=None)
        assert order["origin"] == "jobag"
        assert order["internal_comment"] is None, "employers never see the internal comment"

    @pytest.mark.parametrize(
        ("principal", "changes", "code"),
        [
            pytest.param(
                EMPLOYER, {"job_type": "wage_subsidy"}, "forbidden", id="employer-wage-subsidy"
            ),
            pytest.param(f"employer:{EMPLOYER_B}", {}, "forbidden", id="employer-other-cvr"),
            pytest.param(JOBCENTRE, {"title": "x" * 101}, "validation_error", id="title-too-long"),
            pytest.param(
                JOBCENTRE,
                {"description": "x" * 5001},
                "validation_error",
                id="description-too-long",
            ),
            pytest.param(JOBCENTRE, {"positions": 0}, "validation_error", id="no-positions"),
            pytest.param(JOBCENTRE, {"salary": 1}, "validation_error", id="unknown-field"),
            pytest.param(
                JOBCENTRE, {"employer": {"cvr": "12345678"}}, "validation_error", id="bad-cvr"
            ),
        ],
    )
    def test_is_refused_and_writes_nothing_but_the_rejection(
        self, foundation: Foundation, principal: str, changes: dict[str, Any], code: str
    ) -> None:
        assert (
            error_code(foundation, principal, K.REGISTER_ORDER, {"order": order_doc(**changes)})
            == code
        )
        assert count(foundation, "orders") == 0
        assert count(foundation, "events") == 0
        assert count(foundation, "dead_letters") == 1

    def test_bad_kommunekode_names_the_field(self, foundation: Foundation) -> None:
        address = order_doc()["address"] | {"municipality": "999"}
        reply = call(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc(address=address)})
        assert reply["error"]["code"] == "validation_error"
        assert reply["error"]["field"] == "order.address.municipality"


class TestIdempotency:
    def test_the_same_command_id_twice_changes_the_store_once(self, foundation: Foundation) -> None:
        payload = {"order": order_doc()}
        first = call(foundation, JOBCENTRE, K.REGISTER_ORDER, payload, command_id="cmd-000001")
        again = call(foundation, JOBCENTRE, K.REGISTER_ORDER, payload, command_id="cmd-000001")
        assert first == again
        assert count(foundation, "orders") == 1
        assert count(foundation, "events") == 1

    def test_a_rejected_command_stays_rejected_when_redelivered(
        self, foundation: Foundation
    ) -> None:
        order = register(foundation)
        stale = {"order_id": order["id"], "expected_version": 2, "patch": {"positions": 3}}
        first = call(foundation, JOBCENTRE, K.UPDATE_ORDER, stale, command_id="cmd-000002")
        assert first["error"]["code"] == "version_conflict"
        ok(
            foundation,
            JOBCENTRE,
            K.UPDATE_ORDER,
            {"order_id": order["id"], "expected_version": 1, "patch": {"title": "Ny titel"}},
        )
        # The order is now at version 2, but the redelivery must not apply the old command.
        again = call(foundation, JOBCENTRE, K.UPDATE_ORDER, stale, command_id="cmd-000002")
        assert again == first
        assert ok(foundation, JOBCENTRE, K.GET_ORDER, {"order_id": order["id"]})["positions"] == 2

    def test_a_reused_command_id_with_another_payload_is_refused(
        self, foundation: Foundation
    ) -> None:
        call(
            foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()}, command_id="cmd-000003"
        )
        reply = call(
            foundation,
            JOBCENTRE,
            K.REGISTER_ORDER,
            {"order": order_doc(title="Andet")},
            command_id="cmd-000003",
        )
        assert reply["error"]["code"] == "validation_error"
        assert reply["error"]["field"] == "command_id"
        assert count(foundation, "orders") == 1


class TestUpdateOrder:
    def test_with_the_current_version_bumps_it(self, foundation: Foundation) -> None:
        order = register(foundation)
        updated = ok(
            foundation,
            AKASSE,
            K.UPDATE_ORDER,
            {"order_id": order["id"], "expected_version": 1, "patch": {"positions": 5}},
        )
        assert (updated["positions"], updated["version"]) == (5, 2)

    def test_with_a_stale_version_is_a_conflict(self, foundation: Foundation) -> None:
        order = register(foundation)
        payload = {"order_id": order["id"], "expected_version": 1, "patch": {"positions": 5}}
        ok(foundation, AKASSE, K.UPDATE_ORDER, payload)
        assert error_code(foundation, JOBCENTRE, K.UPDATE_ORDER, payload) == "version_conflict"

    def test_an_empty_patch_is_invalid(self, foundation: Foundation) -> None:
        order = register(foundation)
        payload = {"order_id": order["id"], "expected_version": 1, "patch": {}}
        assert error_code(foundation, JOBCENTRE, K.UPDATE_ORDER, payload) == "validation_error"

    def test_an_employer_cannot_touch_another_employers_order(self, foundation: Foundation) -> None:
        order = register(foundation)
        payload = {"order_id": order["id"], "expected_version": 1, "patch": {"positions": 5}}
        code = error_code(foundation, f"employer:{EMPLOYER_B}", K.UPDATE_ORDER, payload)
        assert code == "not_found"


class TestOrderStatus:
    @pytest.mark.parametrize(
        ("path", "principal"),
        [
            pytest.param(["inactivated"], JOBCENTRE, id="inactivate"),
            pytest.param(["inactivated", "processing"], EMPLOYER, id="reactivate-by-employer"),
            pytest.param(["closed_filled"], AKASSE, id="close-filled"),
            pytest.param(["inactivated", "closed_filled"], JOBCENTRE, id="close-inactivated"),
            pytest.param(["closed_expired"], "system", id="expire-by-system"),
        ],
    )
    def test_allowed_transitions(
        self, foundation: Foundation, path: list[str], principal: str
    ) -> None:
        order = register(foundation)
        for status in path:
            order = ok(
                foundation,
                principal,
                K.CHANGE_ORDER_STATUS,
                {"order_id": order["id"], "status": status},
            )
        assert order["status"] == path[-1]
        assert order["version"] == 1 + len(path)

    @pytest.mark.parametrize(
        ("path", "principal", "code"),
        [
            pytest.param(["closed_expired"], JOBCENTRE, "forbidden", id="expire-by-jobcentre"),
            pytest.param(
                ["closed_filled", "processing"], JOBCENTRE, "invalid_transition", id="reopen-closed"
            ),
            pytest.param(["processing"], JOBCENTRE, "invalid_transition", id="same-status"),
        ],
    )
    def test_refused_transitions(
        self, foundation: Foundation, path: list[str], principal: str, code: str
    ) -> None:
        order = register(foundation)
        *allowed, refused = path
        for status in allowed:
            ok(
                foundation,
                JOBCENTRE,
                K.CHANGE_ORDER_STATUS,
                {"order_id": order["id"], "status": status},
            )
        payload = {"order_id": order["id"], "status": refused}
        assert error_code(foundation, principal, K.CHANGE_ORDER_STATUS, payload) == code


class TestPlacements:
    def test_masking_per_placing_organisation(self, foundation: Foundation) -> None:
        order = register(foundation)
        mine = ok(
            foundation,
            JOBCENTRE,
            K.REGISTER_PLACEMENT,
            {"order_id": order["id"], "cpr": CPR_1, "note": "god kandidat"},
        )
        ok(foundation, AKASSE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_2})
        assert mine["cpr"] == CPR_1
        log = ok(foundation, JOBCENTRE, K.PLACEMENT_LOG, {"order_id": order["id"]})
        by_org = {p["placed_by"]: p for p in log["placements"]}
        assert by_org[JOBCENTRE]["cpr"] == CPR_1 and by_org[JOBCENTRE]["note"] == "god kandidat"
        assert by_org[AKASSE]["cpr"] is None and by_org[AKASSE]["masked"] is True
        employer_log = ok(foundation, EMPLOYER, K.PLACEMENT_LOG, {"order_id": order["id"]})
        assert [p["cpr"] for p in employer_log["placements"]] == [None, None]
        assert all(e["note"] is None for e in employer_log["entries"])

    def test_a_person_goes_through_interview_to_hired(self, foundation: Foundation) -> None:
        order = register(foundation)
        placement = ok(
            foundation,
            JOBCENTRE,
            K.REGISTER_PLACEMENT,
            {"order_id": order["id"], "cpr": CPR_1, "referral": True},
        )
        ids = {"order_id": order["id"], "placement_id": placement["id"]}
        ok(foundation, EMPLOYER, K.CHANGE_PLACEMENT_STATUS, {**ids, "status": "interview"})
        hired = ok(foundation, JOBCENTRE, K.CHANGE_PLACEMENT_STATUS, {**ids, "status": "hired"})
        assert hired["status"] == "hired"
        log = ok(foundation, JOBCENTRE, K.PLACEMENT_LOG, {"order_id": order["id"]})
        assert [(e["from_status"], e["to_status"], e["organisation"]) for e in log["entries"]] == [
            (None, "placed", JOBCENTRE),
            ("placed", "interview", EMPLOYER),
            ("interview", "hired", JOBCENTRE),
        ]

    @pytest.mark.parametrize(
        ("principal", "status", "code"),
        [
            pytest.param(AKASSE, "withdrawn", "forbidden", id="not-the-placing-org"),
            pytest.param(EMPLOYER, "withdrawn", "forbidden", id="employer-non-outcome"),
            pytest.param(JOBCENTRE, "placed", "invalid_transition", id="back-to-placed"),
        ],
    )
    def test_refused_person_status_changes(
        self, foundation: Foundation, principal: str, status: str, code: str
    ) -> None:
        order = register(foundation)
        placement = ok(
            foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1}
        )
        payload = {"order_id": order["id"], "placement_id": placement["id"], "status": status}
        assert error_code(foundation, principal, K.CHANGE_PLACEMENT_STATUS, payload) == code

    @pytest.mark.parametrize(
        ("principal", "setup", "code"),
        [
            pytest.param(EMPLOYER, [], "forbidden", id="employer-cannot-place"),
            pytest.param(JOBCENTRE, ["inactivated"], "invalid_transition", id="inactivated-order"),
            pytest.param(JOBCENTRE, ["closed_filled"], "invalid_transition", id="closed-order"),
        ],
    )
    def test_refused_placements(
        self, foundation: Foundation, principal: str, setup: list[str], code: str
    ) -> None:
        order = register(foundation)
        for status in setup:
            ok(
                foundation,
                JOBCENTRE,
                K.CHANGE_ORDER_STATUS,
                {"order_id": order["id"], "status": status},
            )
        payload = {"order_id": order["id"], "cpr": CPR_1}
        assert error_code(foundation, principal, K.REGISTER_PLACEMENT, payload) == code
        assert count(foundation, "placements") == 0

    def test_one_placement_per_person_per_order(self, foundation: Foundation) -> None:
        order = register(foundation)
        ok(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1})
        reply = call(
            foundation, AKASSE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1}
        )
        assert reply["error"]["field"] == "cpr"
        assert CPR_1 not in str(reply)

    def test_outcomes_stay_allowed_after_the_order_closed(self, foundation: Foundation) -> None:
        order = register(foundation)
        placement = ok(
            foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1}
        )
        ok(
            foundation,
            EMPLOYER,
            K.CHANGE_ORDER_STATUS,
            {"order_id": order["id"], "status": "closed_filled"},
        )
        hired = ok(
            foundation,
            EMPLOYER,
            K.CHANGE_PLACEMENT_STATUS,
            {"order_id": order["id"], "placement_id": placement["id"], "status": "hired"},
        )
        assert hired["status"] == "hired" and hired["cpr"] is None

    def test_rejected_placements_keep_no_cpr_in_the_dead_letter(
        self, foundation: Foundation
    ) -> None:
        order = register(foundation)
        ok(
            foundation,
            JOBCENTRE,
            K.CHANGE_ORDER_STATUS,
            {"order_id": order["id"], "status": "inactivated"},
        )
        call(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1})
        shown = str(list_dead_letters(foundation.store.connection()))
        assert "register_placement" in shown
        assert CPR_1 not in shown, "what people are shown of a dead letter has no CPR"


class TestSearchAndChanges:
    def test_search_combines_text_and_filters(self, foundation: Foundation) -> None:
        aarhus = order_doc()["address"] | {
            "municipality": "751",
            "postcode": "8000",
            "city": "Aarhus C",
        }
        register(foundation, title="Tømrer til renovering")
        target = register(foundation, title="Tømrerlærling", address=aarhus, job_type="apprentice")
        register(foundation, title="Kok", address=aarhus)
        found = ok(foundation, AKASSE, K.SEARCH_ORDERS, {"text": "tømrer", "municipality": "751"})
        assert found["total"] == 1
        assert [o["id"] for o in found["results"]] == [target["id"]]
        assert ok(foundation, AKASSE, K.SEARCH_ORDERS, {"job_type": "apprentice"})["total"] == 1

    def test_search_text_with_fts_syntax_is_taken_literally(self, foundation: Foundation) -> None:
        register(foundation)
        found = ok(foundation, JOBCENTRE, K.SEARCH_ORDERS, {"text": 'sosu" OR -"AND ('})
        assert found["total"] == 0

    def test_employers_search_their_own_orders_only(self, foundation: Foundation) -> None:
        register(foundation)
        register(foundation, employer={"cvr": EMPLOYER_B})
        found = ok(foundation, EMPLOYER, K.SEARCH_ORDERS, {})
        assert found["total"] == 1
        assert found["results"][0]["employer"]["cvr"] == EMPLOYER_A

    def test_changes_since_a_cursor_list_updated_orders(self, foundation: Foundation) -> None:
        order = register(foundation)
        start = ok(foundation, JOBCENTRE, K.ORDER_CHANGES, {})["cursor"]
        ok(
            foundation,
            JOBCENTRE,
            K.CHANGE_ORDER_STATUS,
            {"order_id": order["id"], "status": "inactivated"},
        )
        page = ok(foundation, OTHER_JOBCENTRE, K.ORDER_CHANGES, {"since": start})
        assert [(c["type"], c["status"]) for c in page["changes"]] == [
            ("order_status_changed", "inactivated")
        ]
        assert page["changes"][0]["order"]["status"] == "inactivated"
        assert Cursor.parse(page["cursor"]).seq > Cursor.parse(start).seq
        assert (
            ok(foundation, JOBCENTRE, K.ORDER_CHANGES, {"since": page["cursor"]})["changes"] == []
        )


def test_the_store_survives_integrity_check(tmp_path: Path) -> None:
    foundation = Foundation(SqliteStore(tmp_path / "store.db"))
    register(foundation)
    conn = sqlite3.connect(tmp_path / "store.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
