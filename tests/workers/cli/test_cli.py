"""§ 137 end to end: the CLI against a real redis-server and a real worker process.

Each test is a scenario from SPEC.md's tables, run through the installed ``jobordre``
program exactly as a jobcentre system would script it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RedisServer, System, free_port
from tests.factories import BAD_CVR, CPR_1, CPR_2, EMPLOYER_A, EMPLOYER_B, order_doc

pytestmark = pytest.mark.integration


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")],
)
def system(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[System]:
    """The scenarios on each store engine: one worker process on a fresh store."""
    redis_server.client().flushall()
    url = (
        request.getfixturevalue("postgres_cluster").fresh_database()
        if request.param == "postgres"
        else None
    )
    running = System(redis_server, tmp_path_factory.mktemp("home"), database_url=url)
    running.start_worker()
    yield running
    running.stop_workers()


JOBCENTRE_KBH = "jobcentre:101"
JOBCENTRE_AARHUS = "jobcentre:751"
AKASSE = "akasse:3f"
EMPLOYER = f"employer:{EMPLOYER_A}"


def write(tmp_path: Path, document: dict[str, Any], name: str = "order.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def register(system: System, tmp_path: Path, principal: str, **changes: Any) -> dict[str, Any]:
    if principal.startswith("employer:"):
        changes.setdefault("internal_comment", None)  # the authorities' field (SPEC.md)
    return system.json(
        "order", "register", "--file", write(tmp_path, order_doc(**changes)), "--as", principal
    )


def error_of(system: System, *args: str, expect: int) -> dict[str, Any]:
    document = system.json(*args, expect=expect)
    error: dict[str, Any] = document["error"]
    return error


class TestIntake:
    def test_an_employer_registers_an_ordinary_job_through_jobag(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path, EMPLOYER)
        assert order["origin"] == "jobag" and order["status"] == "processing"
        # R1: a jobcentre in another municipality fetches it.
        fetched = system.json("order", "get", str(order["id"]), "--as", JOBCENTRE_AARHUS)
        assert fetched["title"] == order["title"] and fetched["registered_by"] == EMPLOYER

    def test_a_jobcentre_registers_an_order(self, system: System, tmp_path: Path) -> None:
        order = register(system, tmp_path, JOBCENTRE_KBH, job_type="flex_job")
        assert (order["origin"], order["job_type"], order["version"]) == (
            "jobcentre",
            "flex_job",
            1,
        )

    def test_an_employer_cannot_register_a_wage_subsidy_job(
        self, system: System, tmp_path: Path
    ) -> None:
        path = write(tmp_path, order_doc(job_type="wage_subsidy"))
        error = error_of(system, "order", "register", "--file", path, "--as", EMPLOYER, expect=3)
        assert error["code"] == "forbidden" and "ordinary" in error["message"]

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            pytest.param({"employer": {"cvr": BAD_CVR}}, "order.employer.cvr", id="invalid-cvr"),
            pytest.param(
                {"address": order_doc()["address"] | {"municipality": "100"}},
                "order.address.municipality",
                id="invalid-kommunekode",
            ),
            pytest.param({"title": ""}, "order.title", id="empty-title"),
        ],
    )
    def test_invalid_identifiers_are_named(
        self, system: System, tmp_path: Path, changes: dict[str, Any], field: str
    ) -> None:
        path = write(tmp_path, order_doc(**changes))
        error = error_of(
            system, "order", "register", "--file", path, "--as", JOBCENTRE_KBH, expect=2
        )
        assert error == {"code": "validation_error", "message": error["message"], "field": field}

    def test_an_unknown_principal_is_a_validation_error(
        self, system: System, tmp_path: Path
    ) -> None:
        path = write(tmp_path, order_doc())
        error = error_of(
            system, "order", "register", "--file", path, "--as", "kommune:101", expect=2
        )
        assert error["code"] == "validation_error" and "jobcentre:<kommunekode>" in error["message"]


class TestSearchAndUpdate:
    def test_search_with_text_and_filters(self, system: System, tmp_path: Path) -> None:
        aarhus = order_doc()["address"] | {
            "municipality": "751",
            "postcode": "8000",
            "city": "Aarhus C",
        }
        wanted = register(system, tmp_path, AKASSE, title="Elektriker søges", address=aarhus)
        register(system, tmp_path, AKASSE, title="Elektriker søges")  # other municipality
        register(system, tmp_path, AKASSE, title="Lagerarbejder", address=aarhus)
        found = system.json(
            "order",
            "search",
            "elektriker",
            "--municipality",
            "751",
            "--status",
            "processing",
            "--as",
            JOBCENTRE_KBH,
        )
        assert [order["id"] for order in found["results"]] == [wanted["id"]]
        assert found["total"] == 1

    def test_update_with_a_stale_version_is_a_conflict(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path, JOBCENTRE_KBH)
        patch = write(tmp_path, {"positions": 4}, "patch.json")
        updated = system.json(
            "order",
            "update",
            str(order["id"]),
            "--expected-version",
            "1",
            "--file",
            patch,
            "--as",
            AKASSE,
        )
        assert (updated["positions"], updated["version"]) == (4, 2)
        error = error_of(
            system,
            "order",
            "update",
            str(order["id"]),
            "--expected-version",
            "1",
            "--file",
            patch,
            "--as",
            JOBCENTRE_KBH,
            expect=5,
        )
        assert error["code"] == "version_conflict" and "version 2" in error["message"]

    def test_changes_since_a_cursor(self, system: System, tmp_path: Path) -> None:
        cursor = system.json("order", "changes", "--as", JOBCENTRE_AARHUS, "--limit", "1000")[
            "cursor"
        ]
        order = register(system, tmp_path, EMPLOYER)
        page = system.json("order", "changes", "--since", str(cursor), "--as", JOBCENTRE_AARHUS)
        assert [(c["type"], c["order_id"]) for c in page["changes"]] == [
            ("order_registered", order["id"])
        ]


class TestStatuses:
    @pytest.mark.parametrize(
        ("steps", "principal"),
        [
            pytest.param(["inactivated", "processing"], EMPLOYER, id="inactivate-and-reactivate"),
            pytest.param(["closed_filled"], EMPLOYER, id="employer-closes-filled"),
            pytest.param(["inactivated", "closed_filled"], AKASSE, id="akasse-closes-inactivated"),
        ],
    )
    def test_allowed_transitions(
        self, system: System, tmp_path: Path, steps: list[str], principal: str
    ) -> None:
        order = register(system, tmp_path, JOBCENTRE_KBH)
        for step in steps:
            order = system.json("order", "status", str(order["id"]), step, "--as", principal)
        assert order["status"] == steps[-1]

    def test_only_the_system_expires_an_order(self, system: System, tmp_path: Path) -> None:
        order = register(system, tmp_path, JOBCENTRE_KBH)
        error = error_of(
            system,
            "order",
            "status",
            str(order["id"]),
            "closed_expired",
            "--as",
            JOBCENTRE_KBH,
            expect=3,
        )
        assert error["code"] == "forbidden"

    def test_a_closed_order_is_final(self, system: System, tmp_path: Path) -> None:
        order = register(system, tmp_path, JOBCENTRE_KBH)
        system.json("order", "status", str(order["id"]), "closed_filled", "--as", JOBCENTRE_KBH)
        error = error_of(
            system,
            "order",
            "status",
            str(order["id"]),
            "processing",
            "--as",
            JOBCENTRE_KBH,
            expect=6,
        )
        assert error["code"] == "invalid_transition"


class TestPlacements:
    def test_jobcentre_and_akasse_place_and_see_only_their_own_cpr(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path, EMPLOYER)
        mine = system.json(
            "placement",
            "register",
            str(order["id"]),
            "--cpr",
            CPR_1,
            "--referral",
            "--as",
            JOBCENTRE_KBH,
        )
        assert (mine["cpr"], mine["status"], mine["referral"]) == (CPR_1, "placed", True)
        # The CPR can come on stdin, out of the process list.
        theirs = system.json(
            "placement",
            "register",
            str(order["id"]),
            "--cpr",
            "-",
            "--as",
            AKASSE,
            stdin=CPR_2 + "\n",
        )
        assert theirs["cpr"] == CPR_2
        log = system.json("placement", "log", str(order["id"]), "--as", JOBCENTRE_KBH)
        cprs = {p["placed_by"]: p["cpr"] for p in log["placements"]}
        assert cprs == {JOBCENTRE_KBH: CPR_1, AKASSE: None}
        employer_view = system.json("placement", "log", str(order["id"]), "--as", EMPLOYER)
        assert all(p["cpr"] is None and p["masked"] for p in employer_view["placements"])

    def test_a_person_goes_through_interview_to_hired(self, system: System, tmp_path: Path) -> None:
        order = register(system, tmp_path, EMPLOYER)
        placement = system.json(
            "placement", "register", str(order["id"]), "--cpr", CPR_1, "--as", AKASSE
        )
        ids = (str(order["id"]), str(placement["id"]))
        interview = system.json("placement", "status", *ids, "interview", "--as", EMPLOYER)
        assert interview["status"] == "interview" and interview["cpr"] is None
        hired = system.json("placement", "status", *ids, "hired", "--as", AKASSE)
        assert hired["status"] == "hired"
        log = system.json("placement", "log", str(order["id"]), "--as", AKASSE)
        assert [e["to_status"] for e in log["entries"]] == ["placed", "interview", "hired"]

    def test_an_invalid_cpr_is_refused_without_echoing_it(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path, JOBCENTRE_KBH)
        result = system.cli(
            "placement",
            "register",
            str(order["id"]),
            "--cpr",
            "3102901234",
            "--as",
            JOBCENTRE_KBH,
            "--json",
        )
        assert result.code == 2
        assert json.loads(result.out)["error"]["field"] == "cpr"
        assert "3102901234" not in result.out + result.err
        assert b"3102901234" not in system.worker_logs()

    def test_an_employer_cannot_place(self, system: System, tmp_path: Path) -> None:
        order = register(system, tmp_path, EMPLOYER)
        error = error_of(
            system,
            "placement",
            "register",
            str(order["id"]),
            "--cpr",
            CPR_1,
            "--as",
            EMPLOYER,
            expect=3,
        )
        assert error["code"] == "forbidden"


class TestDelivery:
    def test_the_same_command_id_twice_changes_the_store_once(
        self, system: System, tmp_path: Path
    ) -> None:
        path = write(tmp_path, order_doc(title="Idempotent ordre"))
        first = system.json(
            "order",
            "register",
            "--file",
            path,
            "--as",
            JOBCENTRE_KBH,
            "--command-id",
            "jobcentre-101-req-0001",
        )
        again = system.json(
            "order",
            "register",
            "--file",
            path,
            "--as",
            JOBCENTRE_KBH,
            "--command-id",
            "jobcentre-101-req-0001",
        )
        assert first == again
        [stored] = system.sql("SELECT COUNT(*) FROM orders WHERE title = 'Idempotent ordre'")
        assert stored[0] == 1

    def test_rejected_commands_are_kept_with_their_reason(
        self, system: System, tmp_path: Path
    ) -> None:
        path = write(tmp_path, order_doc(job_type="wage_subsidy"))
        system.json(
            "order",
            "register",
            "--file",
            path,
            "--as",
            EMPLOYER,
            "--command-id",
            "rejected-cmd-0001",
            expect=3,
        )
        letters = system.json("dead", "list")["dead_letters"]
        kept = [d for d in letters if d["command_id"] == "rejected-cmd-0001"]
        assert len(kept) == 1
        assert kept[0]["code"] == "forbidden" and kept[0]["source"] == "rejected"

    def test_an_unreachable_broker_is_unavailable_not_a_hang(self, system: System) -> None:
        result = system.cli(
            "order",
            "get",
            "1",
            "--as",
            JOBCENTRE_KBH,
            "--json",
            JOBORDRE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        )
        assert result.code == 7
        assert json.loads(result.out)["error"]["code"] == "unavailable"

    def test_a_poison_message_is_dead_lettered_and_the_worker_keeps_serving(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path, JOBCENTRE_KBH)
        # A corrupt row: every attempt crashes.
        system.sql("UPDATE orders SET doc = '{\"broken\": true}' WHERE id = ?", (order["id"],))
        error = error_of(system, "order", "get", str(order["id"]), "--as", JOBCENTRE_KBH, expect=7)
        assert "dead letter" in error["message"]
        crashed = [
            d for d in system.json("dead", "list")["dead_letters"] if d["source"] == "crashed"
        ]
        assert crashed and "ValidationError" in crashed[0]["traceback"]
        assert register(system, tmp_path, JOBCENTRE_KBH)["status"] == "processing"

    def test_usage_errors_are_json_too(self, system: System) -> None:
        result = system.cli("order", "status", "1", "reopened", "--as", JOBCENTRE_KBH, "--json")
        assert result.code == 2
        assert json.loads(result.out)["error"]["code"] == "validation_error"


def test_other_employers_do_not_see_an_order(system: System, tmp_path: Path) -> None:
    order = register(system, tmp_path, EMPLOYER)
    error = error_of(
        system, "order", "get", str(order["id"]), "--as", f"employer:{EMPLOYER_B}", expect=4
    )
    assert error["code"] == "not_found"


class TestSigningKeys:
    def test_a_client_without_a_key_or_the_store_is_told_how_to_get_one(
        self, system: System, tmp_path: Path
    ) -> None:
        remote = {
            "JOBORDRE_HOME": str(tmp_path / "remote"),
            "JOBORDRE_DB": str(tmp_path / "none.db"),
            "JOBORDRE_DATABASE_URL": "",  # no store of any engine within reach
        }
        result = system.cli("order", "get", "1", "--as", "jobcentre:461", "--json", **remote)
        assert result.code == 3
        error = json.loads(result.out)["error"]
        assert error["code"] == "forbidden" and "jobordre keys create" in error["message"]

    def test_an_operator_issued_key_file_lets_a_remote_client_in(
        self, system: System, tmp_path: Path
    ) -> None:
        key_file = tmp_path / "aalborg.key"
        made = system.json("keys", "create", "jobcentre:851", "--out", str(key_file))
        assert made["principal"] == "jobcentre:851" and key_file.stat().st_mode & 0o077 == 0
        remote = {
            "JOBORDRE_HOME": str(tmp_path / "remote"),
            "JOBORDRE_DB": str(tmp_path / "none.db"),
            "JOBORDRE_DATABASE_URL": "",  # no store of any engine within reach
            "JOBORDRE_KEY_FILE": str(key_file),
        }
        order = register(system, tmp_path, JOBCENTRE_KBH)
        result = system.cli(
            "order", "get", str(order["id"]), "--as", "jobcentre:851", "--json", **remote
        )
        assert result.code == 0, result.out
        system.json("keys", "revoke", "jobcentre:851", "--key-id", made["key_id"])
        refused = system.cli(
            "order", "get", str(order["id"]), "--as", "jobcentre:851", "--json", **remote
        )
        assert json.loads(refused.out)["error"]["code"] == "forbidden"
        listed = system.json("keys", "list", "jobcentre:851")["keys"]
        assert [k["revoked_at"] is not None for k in listed] == [True]
        assert "secret" not in json.dumps(listed)


def test_every_job_writes_one_json_line(system: System, tmp_path: Path) -> None:
    order = register(system, tmp_path, JOBCENTRE_KBH)
    system.json("order", "get", str(order["id"]), "--as", JOBCENTRE_AARHUS)
    lines = [
        json.loads(line) for line in system.worker_logs().splitlines() if line.startswith(b"{")
    ]
    gets = [line for line in lines if line.get("kind") == "get_order" and line["outcome"] == "ok"]
    assert gets, "a JSON line for the get"
    assert set(gets[-1]) == {
        "at",
        "pid",
        "kind",
        "command_id",
        "principal",
        "correlation_id",
        "duration_ms",
        "outcome",
    }
    assert gets[-1]["principal"] == JOBCENTRE_AARHUS


def test_a_long_wait_with_no_worker_ends_as_no_answer_not_a_lost_broker(
    bare_system: System,
) -> None:
    # Longer than redis-py's default 5 s socket timeout: the wait must not read as a broken
    # connection.
    from shared.store import SqliteStore

    SqliteStore(bare_system.db).close()
    started = time.monotonic()
    result = bare_system.cli(
        "order", "get", "1", "--as", JOBCENTRE_KBH, "--json", "--timeout-ms", "8000"
    )
    assert result.code == 7, result.out + result.err
    error = json.loads(result.out)["error"]
    assert "no worker answered" in error["message"], error["message"]
    assert time.monotonic() - started >= 8
