"""Personal data: every read or change is logged per person; retention removes the CPR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.commands import CommandKind
from shared.foundation import Foundation
from shared.store import SqliteStore as Store
from tests.factories import CPR_1, CPR_2, EMPLOYER_A, order_doc
from tests.shared.test_foundation import call, ok, register

K = CommandKind
JOBCENTRE, AKASSE, EMPLOYER = "jobcentre:101", "akasse:3f", f"employer:{EMPLOYER_A}"
#: The foundation's data-protection role: the only principal that sees a person's whole log.
STAR = "star"


@pytest.fixture
def foundation(tmp_path: Path) -> Foundation:
    return Foundation(Store(tmp_path / "store.db"))


def audit(f: Foundation, cpr: str, who: str = STAR) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = ok(f, who, K.AUDIT_PERSON, {"cpr": cpr})["entries"]
    return entries


def test_every_read_and_change_of_a_person_is_logged(foundation: Foundation) -> None:
    order = register(foundation)
    placement = ok(
        foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1}
    )
    ok(foundation, AKASSE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_2})
    ok(foundation, JOBCENTRE, K.PLACEMENT_LOG, {"order_id": order["id"]})  # sees CPR_1
    ok(foundation, AKASSE, K.PLACEMENT_LOG, {"order_id": order["id"]})  # CPR_1 masked for it
    ok(
        foundation,
        EMPLOYER,
        K.CHANGE_PLACEMENT_STATUS,
        {"order_id": order["id"], "placement_id": placement["id"], "status": "hired"},
    )
    assert [(e["action"], e["organisation"]) for e in audit(foundation, CPR_1)] == [
        ("register", JOBCENTRE),
        ("read", JOBCENTRE),
        ("change", EMPLOYER),
    ]
    # The access request itself is on the record next time.
    assert audit(foundation, CPR_1)[-1]["action"] == "audit"


def test_the_access_log_holds_no_cpr(foundation: Foundation) -> None:
    order = register(foundation)
    ok(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1})
    dump = "\n".join(foundation.store.connection().raw.iterdump())
    rows = [line for line in dump.splitlines() if "access_log" in line or '"commands"' in line]
    assert rows and not any(CPR_1 in line for line in rows)


def test_an_organisation_learns_only_its_own_dealings_with_a_person(
    foundation: Foundation,
) -> None:
    # The review's oracle: akasse:3f places a person; jobcentre:751 sees the placement
    # masked, and must not learn from an access request who placed the person, or where.
    order = register(foundation)
    ok(
        foundation,
        AKASSE,
        K.REGISTER_PLACEMENT,
        {"order_id": order["id"], "cpr": CPR_1, "note": "god kandidat"},
    )
    log = ok(foundation, "jobcentre:751", K.PLACEMENT_LOG, {"order_id": order["id"]})
    assert [(p["cpr"], p["masked"]) for p in log["placements"]] == [(None, True)]
    assert audit(foundation, CPR_1, who="jobcentre:751") == []
    # Asking again shows its own request, and still nothing of akasse:3f's.
    seen = audit(foundation, CPR_1, who="jobcentre:751")
    assert [(e["action"], e["organisation"]) for e in seen] == [("audit", "jobcentre:751")]
    assert AKASSE not in json.dumps(seen)
    # The placing organisation sees its own dealings, and no one else's.
    assert [(e["action"], e["organisation"]) for e in audit(foundation, CPR_1, AKASSE)] == [
        ("register", AKASSE)
    ]


def test_the_foundation_sees_the_whole_history_and_every_request(foundation: Foundation) -> None:
    order = register(foundation)
    ok(foundation, AKASSE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1})
    audit(foundation, CPR_1, who="jobcentre:751")
    audit(foundation, CPR_1, who=AKASSE)
    assert [(e["action"], e["organisation"]) for e in audit(foundation, CPR_1)] == [
        ("register", AKASSE),
        ("audit", "jobcentre:751"),
        ("audit", AKASSE),
    ]


@pytest.mark.parametrize(
    "who",
    [
        pytest.param(EMPLOYER, id="an-employer"),
        pytest.param("system", id="the-scheduler"),
    ],
)
def test_an_access_request_from_who_never_places_is_refused(
    foundation: Foundation, who: str
) -> None:
    reply = call(foundation, who, K.AUDIT_PERSON, {"cpr": CPR_1})
    assert reply["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        pytest.param(K.SEARCH_ORDERS, {}, id="search"),
        pytest.param(K.PLACEMENT_LOG, {"order_id": 1}, id="placement-log"),
        pytest.param(K.REGISTER_ORDER, {"order": order_doc()}, id="register"),
    ],
)
def test_the_data_protection_role_acts_on_no_job_order(
    foundation: Foundation, kind: CommandKind, payload: dict[str, Any]
) -> None:
    register(foundation)
    reply = call(foundation, STAR, kind, payload)
    assert reply["error"]["code"] == "forbidden"
    assert "star" in reply["error"]["message"]


def test_retention_removes_the_person_from_long_closed_orders_only(foundation: Foundation) -> None:
    closed, open_ = register(foundation), register(foundation)
    for order in (closed, open_):
        ok(
            foundation,
            JOBCENTRE,
            K.REGISTER_PLACEMENT,
            {"order_id": order["id"], "cpr": CPR_1, "note": "ringede mandag"},
        )
    ok(
        foundation,
        JOBCENTRE,
        K.CHANGE_ORDER_STATUS,
        {"order_id": closed["id"], "status": "closed_filled"},
    )
    kept = ok(foundation, "system", K.ANONYMISE_PLACEMENTS, {"retention_days": 1})
    assert kept["anonymised"] == 0, "closed today: within a day's retention"
    done = ok(foundation, "system", K.ANONYMISE_PLACEMENTS, {"retention_days": 0})
    assert done["anonymised"] == 1
    log = ok(foundation, JOBCENTRE, K.PLACEMENT_LOG, {"order_id": closed["id"]})
    assert [(p["cpr"], p["note"], p["status"]) for p in log["placements"]] == [
        (None, None, "placed")
    ]
    assert [(e["to_status"], e["note"]) for e in log["entries"]] == [("placed", None)]
    still = ok(foundation, JOBCENTRE, K.PLACEMENT_LOG, {"order_id": open_["id"]})
    assert still["placements"][0]["cpr"] == CPR_1
    assert "anonymise" in [e["action"] for e in audit(foundation, CPR_1)]


def test_only_the_system_anonymises(foundation: Foundation) -> None:
    reply = call(foundation, JOBCENTRE, K.ANONYMISE_PLACEMENTS, {"retention_days": 0})
    assert reply["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("headers_only", "reads"),
    [
        pytest.param(False, 1, id="full-events-are-reads"),
        pytest.param(True, 0, id="headers-only-read-no-one"),
    ],
)
def test_reading_the_inbox_logs_what_it_showed_of_people(
    foundation: Foundation, headers_only: bool, reads: int
) -> None:
    order = register(foundation)
    ok(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1})
    inbox = ok(foundation, JOBCENTRE, K.INBOX, {"headers_only": headers_only})
    assert ("log" in inbox["events"][-1]) is not headers_only
    actions = [e["action"] for e in audit(foundation, CPR_1)]
    assert actions.count("read") == reads
