"""Dead letters end to end: a poison message is kept, shown, fixed, retried and applied once.

Runs the installed ``jobordre`` against a real redis-server and a real worker process; the
store-only parts (purge, retrying what can be retried) run on a real SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import psycopg
import pytest

from shared import keys, store
from shared.commands import CommandKind
from shared.envelope import decode_envelope, new_envelope
from shared.errors import InvalidInput, NotFound, Unavailable
from shared.foundation import Foundation
from shared.settings import Settings
from shared.signing import SigningKey, verify
from shared.store import SqliteStore as Store
from shared.store import Store as AnyStore
from tests.conftest import System, wait_until
from tests.factories import CPR_1, order_doc
from workers.ops import deadletters
from workers.ops.deadletters import (
    RETENTION_OPERATOR,
    operator_name,
    parse_duration,
    purge,
    purge_ids,
    retry_letters,
)

JOBCENTRE = "jobcentre:101"


def register(system: System, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc()))
    return system.json("order", "register", "--file", str(path), "--as", JOBCENTRE)


def letters_for(system: System, command_id: str) -> list[dict[str, Any]]:
    return [
        d
        for d in system.json("dead", "list", "--limit", "500")["dead_letters"]
        if d["command_id"] == command_id
    ]


def commands_queue(system: System) -> dict[str, Any]:
    [found] = [q for q in system.json("queues")["queues"] if q["name"] == "jobordre.commands"]
    return found


def ledger(system: System, command_id: str) -> list[tuple[str, ...]]:
    with sqlite3.connect(system.db) as conn:
        return conn.execute(
            "SELECT outcome FROM commands WHERE command_id = ?", (command_id,)
        ).fetchall()


@pytest.mark.integration
class TestPoisonMessage:
    def test_a_crashed_write_is_shown_then_retried_after_the_fix_and_applied_once(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path)
        with sqlite3.connect(system.db) as conn:
            good_doc = conn.execute(
                "SELECT doc FROM orders WHERE id = ?", (order["id"],)
            ).fetchone()
            conn.execute(
                "UPDATE orders SET doc = '{\"broken\": true}' WHERE id = ?", (order["id"],)
            )
        command_id = "poison-status-0001"
        failed = system.json(
            "order",
            "status",
            str(order["id"]),
            "inactivated",
            "--as",
            JOBCENTRE,
            "--command-id",
            command_id,
            expect=7,
        )
        assert "dead letter" in failed["error"]["message"]

        [letter] = letters_for(system, command_id)
        assert (letter["source"], letter["kind"], letter["retried_at"]) == (
            "crashed",
            "change_order_status",
            None,
        )
        shown = system.json("dead", "show", str(letter["id"]))["dead_letter"]
        assert "ValidationError" in shown["traceback"] and "original" not in shown
        assert ledger(system, command_id) == []  # the crash rolled everything back

        with sqlite3.connect(system.db) as conn:  # the fix
            conn.execute("UPDATE orders SET doc = ? WHERE id = ?", (good_doc[0], order["id"]))
        assert commands_queue(system)["dead_broker"] == 1  # Dramatiq's copy in .XQ
        retried = system.json("dead", "retry", str(letter["id"]), "--by", "alice")
        assert retried["by"] == "alice"
        assert [(r["id"], r["queue"], r["broker_copies_removed"]) for r in retried["retried"]] == [
            (letter["id"], "jobordre.commands", 1)
        ]
        assert commands_queue(system)["dead_broker"] == 0

        def applied() -> dict[str, Any] | None:
            now = system.json("order", "get", str(order["id"]), "--as", JOBCENTRE)
            return now if now["status"] == "inactivated" else None

        now = wait_until(applied, 30, "the retried status change to be applied")
        assert now["version"] == order["version"] + 1  # applied once, not twice
        assert ledger(system, command_id) == [("ok",)]
        [after] = letters_for(system, command_id)  # no new dead letter for it
        assert (after["id"], after["retried_by"]) == (letter["id"], "alice")
        audit = system.json("dead", "audit")["audit"]
        assert any(
            a["dead_letter_id"] == letter["id"]
            and a["operator"] == "alice"
            and a["action"] == "retry"
            for a in audit
        )

    def test_a_rejected_placement_is_retried_once_its_cause_is_gone(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path)
        order_id = str(order["id"])
        system.json("order", "status", order_id, "inactivated", "--as", JOBCENTRE)
        command_id = "rejected-placement-0001"
        error = system.json(
            "placement",
            "register",
            order_id,
            "--cpr",
            CPR_1,
            "--as",
            JOBCENTRE,
            "--command-id",
            command_id,
            expect=6,
        )["error"]
        assert error["code"] == "invalid_transition"
        [letter] = letters_for(system, command_id)
        assert letter["source"] == "rejected" and ledger(system, command_id) == [("rejected",)]

        # Neither the human nor the JSON view of the letter shows the person's CPR.
        human = system.cli("dead", "show", str(letter["id"]))
        as_json = system.cli("dead", "show", str(letter["id"]), "--json")
        assert human.code == 0 and as_json.code == 0
        assert CPR_1 not in human.out + as_json.out
        assert json.loads(json.loads(as_json.out)["dead_letter"]["message"])["payload"]["cpr"] == (
            "**********"
        )

        system.json("order", "status", order_id, "processing", "--as", JOBCENTRE)  # the fix
        retried = system.json("dead", "retry", str(letter["id"]), "--by", "bob")["retried"]
        assert retried[0]["ledger_cleared"] is True

        def placed() -> list[dict[str, Any]]:
            log = system.json("placement", "log", order_id, "--as", JOBCENTRE)
            return list(log["placements"])

        placements = wait_until(placed, 30, "the retried placement to be applied")
        assert [p["cpr"] for p in placements] == [CPR_1]
        assert ledger(system, command_id) == [("ok",)]
        # The ledger now answers the command id with the placement, as for any resend.
        again = system.json(
            "placement",
            "register",
            order_id,
            "--cpr",
            CPR_1,
            "--as",
            JOBCENTRE,
            "--command-id",
            command_id,
        )
        assert again["id"] == placements[0]["id"]
        assert len(placed()) == 1

    @pytest.mark.parametrize(
        ("args", "code"),
        [
            pytest.param(("dead", "retry", "999999", "--by", "alice"), 4, id="unknown-id"),
            pytest.param(("dead", "retry", "--by", "alice"), 2, id="neither-ids-nor-all"),
            pytest.param(("dead", "retry", "1", "--all"), 2, id="both-ids-and-all"),
            pytest.param(("dead", "retry", "--all", "--by", "al ice"), 2, id="bad-operator"),
            pytest.param(("dead", "show", "999999"), 4, id="show-unknown-id"),
            pytest.param(("dead", "purge", "--older-than", "soon"), 2, id="bad-duration"),
            pytest.param(("dead", "purge", "--by", "alice"), 2, id="purge-neither-ids-nor-age"),
            pytest.param(
                ("dead", "purge", "1", "--older-than", "9d"), 2, id="purge-both-ids-and-age"
            ),
            pytest.param(("dead", "purge", "999999", "--by", "alice"), 4, id="purge-unknown-id"),
        ],
    )
    def test_mistakes_are_named(self, system: System, args: tuple[str, ...], code: int) -> None:
        result = system.cli(*args, "--json")
        assert result.code == code, result.out + result.err
        document = json.loads(result.out)
        codes = (
            [document["error"]["code"]]
            if "error" in document
            else [s["code"] for s in document["skipped"]]  # named letters not retried
        )
        assert codes and set(codes) <= {"not_found", "validation_error"}


# --- the store side, on a real SQLite file ------------------------------------------------

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


SIGNED = "signed"


def _letter(
    conn: sqlite3.Connection,
    at: datetime,
    *,
    original: str | None = SIGNED,
    key: SigningKey | None = None,
) -> int:
    command_id = f"cmd-{at.timestamp():.0f}"
    if original == SIGNED:
        # A command sent ten minutes before it was set aside (inside the signature window
        # then); the retry comes later still, past the window, so it must be re-signed.
        key = key or keys.create(conn, "jobcentre:101", at - timedelta(hours=1))
        original = new_envelope(
            CommandKind.GET_ORDER,
            "jobcentre:101",
            {"order_id": 1},
            command_id=command_id,
            key=key,
            sent_at=at - timedelta(minutes=10),
        ).to_json()
    return store.record_dead_letter(
        conn,
        at=at,
        source="crashed",
        code="unavailable",
        reason="kept failing",
        message="{}",
        command_id=command_id,
        kind="get_order",
        original=original,
    )


@pytest.fixture
def fresh(tmp_path: Path) -> Store:
    return Store(tmp_path / "ops.db")


def test_purge_deletes_only_older_letters_and_records_who(fresh: Store) -> None:
    with fresh.write() as conn:
        old = [_letter(conn, NOW - timedelta(days=d)) for d in (91, 120)]
        kept = [_letter(conn, NOW - timedelta(days=d)) for d in (1, 89)]
    result = purge(fresh, older_than=timedelta(days=90), operator="carol", clock=lambda: NOW)
    assert result["purged"] == len(old)
    with fresh.read() as conn:
        left = [d["id"] for d in store.find_dead_letters(conn, limit=10)]
        [row] = store.ops_audit(conn)
    assert sorted(left) == sorted(kept)
    assert (row["operator"], row["action"], row["count"]) == ("carol", "purge", 2)


def _garbage(conn: sqlite3.Connection, *, kind: str | None, original: str) -> int:
    return store.record_dead_letter(
        conn,
        at=NOW,
        source="undecodable",
        code="validation_error",
        reason="not a command",
        message=original,
        command_id=None,
        kind=kind,
        original=original,
    )


def test_retry_retries_what_it_can_and_reports_each_other_letter_with_its_reason(
    fresh: Store,
) -> None:
    with fresh.write() as conn:
        good = _letter(conn, NOW)
        no_original = _letter(conn, NOW + timedelta(seconds=1), original=None)
        garbage = _garbage(conn, kind=None, original="\x00\x01 not a message")
        unknown_kind = _garbage(conn, kind="frobnicate_orders", original="{}")
        planted = _garbage(conn, kind="get_order", original='{"not": "an envelope"}')
        forged = _letter(conn, NOW + timedelta(seconds=2), key=SigningKey.generate("jobcentre:101"))
    sent: list[dramatiq.Message[Any]] = []
    chosen = [good, no_original, garbage, unknown_kind, planted, forged, 424242]
    result = retry_letters(fresh, sent.append, ids=chosen, operator="dave", clock=lambda: NOW)
    assert [r["id"] for r in result["retried"]] == [good]
    skipped = {s["id"]: (s["code"], s["reason"]) for s in result["skipped"]}
    assert set(skipped) == set(chosen) - {good}
    assert skipped[424242][0] == "not_found"
    assert "was not kept" in skipped[no_original][1]
    assert "not a Dramatiq message" in skipped[garbage][1]
    assert "unknown to this jobordre" in skipped[unknown_kind][1]
    assert "not signed by jobcentre:101" in skipped[forged][1]
    assert all(code == "validation_error" for code, _ in [skipped[planted], skipped[forged]])
    assert [(m.actor_name, m.queue_name) for m in sent] == [("get_order", "jobordre.queries")]
    resent = decode_envelope(sent[0].args[0])
    assert resent.command_id == f"cmd-{NOW.timestamp():.0f}"
    assert resent.sent_at > NOW, "re-signed afresh: the signature window starts again"
    with fresh.read() as conn:
        verify(resent.model_dump(mode="json"), keys.valid_keys(conn, "jobcentre:101"))
        assert [row["dead_letter_id"] for row in store.ops_audit(conn)] == [good]
        for letter_id in set(chosen) - {good, 424242}:
            assert store.dead_letter(conn, letter_id)["retried_at"] is None
    # --all takes the letters not retried yet: the unretryable ones are reported again.
    again = retry_letters(fresh, sent.append, ids=None, operator="dave")
    assert again["retried"] == []
    assert sorted(s["id"] for s in again["skipped"]) == sorted(
        {garbage, unknown_kind, planted, forged}
    )


def test_a_broker_failure_part_way_keeps_what_was_retried_and_stops(fresh: Store) -> None:
    with fresh.write() as conn:
        letters = [_letter(conn, NOW + timedelta(seconds=i)) for i in range(3)]
    sent: list[dramatiq.Message[Any]] = []

    def fails_second(message: dramatiq.Message[Any]) -> None:
        if sent:
            raise Unavailable("broker down")
        sent.append(message)

    result = retry_letters(fresh, fails_second, ids=letters, operator="dave", clock=lambda: NOW)
    assert [r["id"] for r in result["retried"]] == letters[:1]
    assert [(s["id"], s["code"]) for s in result["skipped"]] == [
        (letters[1], "unavailable"),
        (letters[2], "unavailable"),
    ]
    with fresh.read() as conn:
        retried = [store.dead_letter(conn, i)["retried_at"] is not None for i in letters]
        assert retried == [True, False, False]
        assert len(store.ops_audit(conn)) == 1


def test_purge_by_id_deletes_those_letters_or_nothing(fresh: Store) -> None:
    with fresh.write() as conn:
        letters = [_letter(conn, NOW + timedelta(seconds=i)) for i in range(3)]
    with pytest.raises(NotFound):
        purge_ids(fresh, [letters[0], 424242], operator="erin", clock=lambda: NOW)
    result = purge_ids(fresh, [letters[0], letters[2]], operator="erin", clock=lambda: NOW)
    assert result["purged"] == 2
    with fresh.read() as conn:
        assert [d["id"] for d in store.find_dead_letters(conn, limit=10)] == [letters[1]]
        audit = store.ops_audit(conn)
    assert sorted((a["action"], a["dead_letter_id"]) for a in audit) == [
        ("purge", letters[0]),
        ("purge", letters[2]),
    ]


def test_retention_that_purged_nothing_writes_no_audit_row(fresh: Store) -> None:
    purge(fresh, older_than=timedelta(days=90), operator=RETENTION_OPERATOR)
    purge(fresh, older_than=timedelta(days=90), operator="carol")
    with fresh.read() as conn:
        assert [a["operator"] for a in store.ops_audit(conn)] == ["carol"]


def test_without_a_login_name_retry_asks_for_by(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_passwd_entry() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(deadletters.getpass, "getuser", no_passwd_entry)
    with pytest.raises(InvalidInput, match="--by NAME") as raised:
        operator_name(None)
    assert raised.value.field == "by"
    assert operator_name("dave") == "dave"


@pytest.mark.parametrize(
    "empty_file", [pytest.param(False, id="missing"), pytest.param(True, id="empty-file")]
)
def test_read_only_commands_never_create_a_store(tmp_path: Path, empty_file: bool) -> None:
    settings = Settings(home=tmp_path / "wrong-home")
    if empty_file:
        settings.home.mkdir()
        settings.db_path.touch()
    for read in (
        lambda: deadletters.list_letters(settings, limit=10),
        lambda: deadletters.show_letter(settings, 1),
        lambda: deadletters.audit(settings, 10),
    ):
        with pytest.raises(Unavailable, match="JOBORDRE_HOME"):
            read()
    assert settings.db_path.exists() is empty_file
    if empty_file:
        assert settings.db_path.stat().st_size == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("90d", timedelta(days=90), id="days"),
        pytest.param("90", timedelta(days=90), id="bare-days"),
        pytest.param("12h", timedelta(hours=12), id="hours"),
        pytest.param("30m", timedelta(minutes=30), id="minutes"),
        pytest.param("0s", timedelta(0), id="zero-seconds"),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.integration
def test_workers_purge_letters_past_the_retention(bare_system: System) -> None:
    now = datetime.now(UTC)
    with Store(bare_system.db).write() as conn:
        expired = _letter(conn, now - timedelta(days=31))
        kept = _letter(conn, now - timedelta(days=29))
    bare_system.start_worker(threads=1, JOBORDRE_DEAD_LETTER_RETENTION_DAYS="30")

    def purged() -> list[dict[str, Any]]:
        return [a for a in bare_system.json("dead", "audit")["audit"] if a["action"] == "purge"]

    [row] = wait_until(purged, 30, "the retention purge")
    assert (row["operator"], row["count"]) == ("retention", 1)
    left = [d["id"] for d in bare_system.json("dead", "list")["dead_letters"]]
    assert left == [kept] and expired not in left


def test_a_command_its_organisation_never_signed_is_never_retried(fresh: Store) -> None:
    with fresh.write() as conn:
        keys.create(conn, "jobcentre:101", NOW)
        forged = _letter(conn, NOW, key=SigningKey.generate("jobcentre:101"))
    sent: list[dramatiq.Message[Any]] = []
    result = retry_letters(fresh, sent.append, ids=[forged], operator="dave")
    assert result["retried"] == [] and sent == []
    [(code, reason)] = [(s["code"], s["reason"]) for s in result["skipped"]]
    assert code == "validation_error" and "not signed by jobcentre:101" in reason


@pytest.mark.postgres
def test_dead_commands_never_turn_an_empty_postgres_database_into_a_store(
    tmp_path: Path, postgres_cluster: Any
) -> None:
    url = str(postgres_cluster.fresh_database(migrated=False))
    settings = Settings(home=tmp_path, database_url=url)
    for command in (
        lambda: deadletters.list_letters(settings, limit=10),
        lambda: deadletters.audit(settings, 10),
        lambda: deadletters.open_store(settings),
    ):
        with pytest.raises(Unavailable, match="not a jobordre store"):
            command()
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()
    assert tables is not None and tables[0] == 0, "nothing was created"


# --- issue 26: what `dead retry` may re-sign (both engines) ----------------------------------

#: The test foundation's signature window, in ms.
WINDOW_MS = 60_000
#: How old a write may be for these tests' retries, in ms.
MAX_AGE_MS = 3_600_000


def bounds() -> Any:
    """The retry bounds of these tests (a window of a minute, an hour for writes)."""
    return deadletters.RetryBounds(
        window_ms=WINDOW_MS, max_age_ms=MAX_AGE_MS, read_window_ms=WINDOW_MS
    )


def _signed(f: Foundation, principal: str, kind: CommandKind, payload: dict[str, Any]) -> Any:
    with f.store.write() as conn:
        valid = keys.valid_keys(conn, principal)
        key = next(iter(valid.values())) if valid else keys.create(conn, principal, NOW)
    return new_envelope(kind, principal, payload, key=key)


def _letter_of(f: Foundation, command_id: str) -> int:
    with f.store.read() as conn:
        [found] = [
            d["id"]
            for d in store.find_dead_letters(conn, limit=100)
            if d["command_id"] == command_id
        ]
    return int(found)


def _refused_update(f: Foundation) -> Any:
    order = f.handle(_signed(f, JOBCENTRE, CommandKind.REGISTER_ORDER, {"order": order_doc()}))
    update = _signed(
        f,
        JOBCENTRE,
        CommandKind.UPDATE_ORDER,
        {"order_id": order["result"]["id"], "expected_version": 7, "patch": {"positions": 9}},
    )
    assert f.handle(update)["error"]["code"] == "version_conflict"
    return update


def test_a_thiefs_refused_write_is_never_resigned_once_its_key_is_revoked(
    any_store: AnyStore,
) -> None:
    f = Foundation(any_store, max_age_ms=WINDOW_MS)
    thief = _refused_update(f)  # signed with the key the thief holds, refused on its version
    with f.store.write() as conn:  # the organisation rotates: a new key, the stolen one revoked
        keys.create(conn, JOBCENTRE, datetime.now(UTC))
        keys.revoke(conn, JOBCENTRE, str(thief.key_id), datetime.now(UTC))
    sent: list[dramatiq.Message[Any]] = []
    result = retry_letters(
        any_store, sent.append, ids=[_letter_of(f, thief.command_id)], operator="dave"
    )
    assert sent == [] and result["retried"] == []
    [skipped] = result["skipped"]
    assert "revoked" in skipped["reason"]


def test_the_age_bound_of_a_retry_runs_to_the_retry(any_store: AnyStore) -> None:
    f = Foundation(any_store, max_age_ms=WINDOW_MS)
    refused = _refused_update(f)
    letter = _letter_of(f, refused.command_id)
    later = refused.sent_at + timedelta(milliseconds=MAX_AGE_MS, minutes=1)
    sent: list[dramatiq.Message[Any]] = []
    late = retry_letters(
        any_store, sent.append, ids=[letter], operator="dave", clock=lambda: later, bounds=bounds()
    )
    assert sent == [] and "JOBORDRE_DEAD_RETRY_MAX_AGE_MS" in late["skipped"][0]["reason"]
    in_time = retry_letters(any_store, sent.append, ids=[letter], operator="dave", bounds=bounds())
    assert [r["id"] for r in in_time["retried"]] == [letter] and len(sent) == 1


def test_a_replayed_read_is_never_rerun_by_a_retry(any_store: AnyStore) -> None:
    f = Foundation(any_store, max_age_ms=WINDOW_MS)
    order = f.handle(_signed(f, JOBCENTRE, CommandKind.REGISTER_ORDER, {"order": order_doc()}))
    placed = f.handle(
        _signed(
            f,
            JOBCENTRE,
            CommandKind.REGISTER_PLACEMENT,
            {"order_id": order["result"]["id"], "cpr": CPR_1},
        )
    )
    assert placed["ok"], placed
    read = _signed(f, JOBCENTRE, CommandKind.PLACEMENT_LOG, {"order_id": order["result"]["id"]})
    assert f.handle(read)["ok"]
    assert f.handle(read)["error"]["field"] == "command_id"  # the replay, kept as a letter
    letter = _letter_of(f, read.command_id)

    def accesses() -> int:
        with f.store.read() as conn:
            return int(conn.execute("SELECT count(*) FROM access_log").fetchone()[0])

    before = accesses()
    past_claim = read.sent_at + timedelta(milliseconds=3 * WINDOW_MS)
    sent: list[dramatiq.Message[Any]] = []
    result = retry_letters(
        any_store,
        sent.append,
        ids=[letter],
        operator="dave",
        clock=lambda: past_claim,
        bounds=bounds(),
    )
    assert sent == [] and "signature window" in result["skipped"][0]["reason"]
    # Inside the window it goes back on the queue, and the claim still refuses it.
    retried = retry_letters(any_store, sent.append, ids=[letter], operator="dave", bounds=bounds())
    assert [r["id"] for r in retried["retried"]] == [letter]
    assert f.handle(decode_envelope(sent[0].args[0]))["error"]["field"] == "command_id"
    assert accesses() == before, "no read ran again"
