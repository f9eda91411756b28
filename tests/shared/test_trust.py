"""What another organisation, or whoever can read or write Redis, can no longer do.

Each test is one of the review's attacks (issue "Trust, part two"), driven against the
foundation on a real SQLite file: a command id belongs to the organisation that sent it,
reads are answered once, a refusal says no more than the caller may see, personal data
travel sealed, retries never widen trust, and transactions always end.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import follows, keys, store
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import Envelope, decode_envelope, new_envelope
from shared.errors import InvalidInput
from shared.foundation import Foundation
from shared.sealing import open_payload, seal_payload
from shared.signing import SigningKey
from shared.store import SqliteStore, Store, dead_letters, list_dead_letters
from shared.store.sqlite import SqliteTx
from tests.factories import CPR_1, EMPLOYER_A, order_doc

K = CommandKind
JOBCENTRE = "jobcentre:101"
AKASSE = "akasse:3f"
EMPLOYER = f"employer:{EMPLOYER_A}"
SYSTEM = "system"


@pytest.fixture
def foundation(any_store: Store) -> Foundation:
    """A foundation on a fresh store of each engine (SQLite, PostgreSQL)."""
    return Foundation(any_store, max_age_ms=60_000)


def key_of(f: Foundation, principal: str) -> SigningKey:
    with f.store.write() as conn:
        valid = keys.valid_keys(conn, principal)
        return next(iter(valid.values())) if valid else keys.create(conn, principal, utc_now())


def envelope(
    f: Foundation, principal: str, kind: CommandKind, payload: dict[str, Any], **changes: Any
) -> Envelope:
    return new_envelope(kind, principal, payload, key=key_of(f, principal), **changes)


def order_with_placement(f: Foundation) -> tuple[int, int]:
    order = f.handle(envelope(f, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()}))
    order_id = order["result"]["id"]
    placed = f.handle(
        envelope(f, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order_id, "cpr": CPR_1})
    )
    assert placed["ok"], placed
    return order_id, placed["result"]["id"]


def rows(f: Foundation, sql: str) -> list[sqlite3.Row]:
    return f.store.connection().execute(sql).fetchall()


def audit(f: Foundation) -> list[dict[str, Any]]:
    reply = f.handle(envelope(f, "star", K.AUDIT_PERSON, {"cpr": CPR_1}))
    assert reply["ok"], reply
    entries: list[dict[str, Any]] = reply["result"]["entries"]
    return entries


class TestTheLedgerIsPerOrganisation:
    def test_another_organisations_copy_of_a_command_id_does_not_claim_it(
        self, foundation: Foundation
    ) -> None:
        order_id = foundation.handle(
            envelope(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()})
        )["result"]["id"]
        real = envelope(
            foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order_id, "cpr": CPR_1}
        )
        # The employer read the queued command off Redis and sends its own, validly signed,
        # under the same command id, before the real one is applied.
        copy = envelope(
            foundation,
            EMPLOYER,
            K.REGISTER_PLACEMENT,
            {"order_id": order_id, "cpr": CPR_1},
            command_id=real.command_id,
        )
        assert foundation.handle(copy)["error"]["code"] == "forbidden"
        reply = foundation.handle(real)
        assert reply["ok"], reply
        assert reply["result"]["placed_by"] == JOBCENTRE
        assert len(rows(foundation, "SELECT * FROM placements")) == 1

    def test_a_stored_reply_is_given_only_to_the_organisation_that_owns_it(
        self, foundation: Foundation
    ) -> None:
        first = foundation.handle(
            envelope(
                foundation,
                JOBCENTRE,
                K.REGISTER_ORDER,
                {"order": order_doc()},
                command_id="c-1234567",
            )
        )
        second = foundation.handle(
            envelope(
                foundation, AKASSE, K.REGISTER_ORDER, {"order": order_doc()}, command_id="c-1234567"
            )
        )
        assert first["ok"] and second["ok"]
        assert first["result"]["id"] != second["result"]["id"]
        assert second["result"]["registered_by"] == AKASSE

    @pytest.mark.parametrize(
        ("kind", "payload", "command_id"),
        [
            pytest.param(K.EXPIRE_ORDERS, {}, "expire-99999", id="deadline-expiry"),
            pytest.param(
                K.ANONYMISE_PLACEMENTS,
                {"retention_days": 0},
                "anonymise-expire-99999",
                id="retention",
            ),
        ],
    )
    def test_a_jobcentre_cannot_take_the_schedulers_ids_for_the_next_period(
        self, foundation: Foundation, kind: CommandKind, payload: dict[str, Any], command_id: str
    ) -> None:
        squatter = envelope(foundation, JOBCENTRE, kind, payload, command_id=command_id)
        assert foundation.handle(squatter)["error"]["code"] == "forbidden"
        scheduled = foundation.handle(
            envelope(foundation, SYSTEM, kind, payload, command_id=command_id)
        )
        assert scheduled["ok"], scheduled


class TestReadsAreReplaySafe:
    def test_a_replayed_read_gets_a_refusal_not_the_data_and_logs_no_access(
        self, foundation: Foundation
    ) -> None:
        order_id, _ = order_with_placement(foundation)
        read = envelope(foundation, JOBCENTRE, K.PLACEMENT_LOG, {"order_id": order_id})
        first = foundation.handle(read)
        assert first["result"]["placements"][0]["cpr"] == CPR_1
        logged = len(rows(foundation, "SELECT * FROM access_log"))
        replay = foundation.handle(read)
        assert replay["ok"] is False
        assert (replay["error"]["code"], replay["error"]["field"]) == (
            "validation_error",
            "command_id",
        )
        assert CPR_1 not in json.dumps(replay)
        assert len(rows(foundation, "SELECT * FROM access_log")) == logged

    def test_reads_of_other_organisations_with_the_same_id_are_answered(
        self, foundation: Foundation
    ) -> None:
        order_id, _ = order_with_placement(foundation)
        for who in (JOBCENTRE, AKASSE):
            reply = foundation.handle(
                envelope(
                    foundation, who, K.GET_ORDER, {"order_id": order_id}, command_id="read-0001"
                )
            )
            assert reply["ok"], reply


class TestNoPresenceOracle:
    def test_the_refusal_tells_another_organisation_nothing_more_and_the_probe_is_logged(
        self, foundation: Foundation
    ) -> None:
        order_id, placement_id = order_with_placement(foundation)
        probe = foundation.handle(
            envelope(foundation, AKASSE, K.REGISTER_PLACEMENT, {"order_id": order_id, "cpr": CPR_1})
        )
        assert probe["error"]["code"] == "validation_error"
        message = probe["error"]["message"]
        assert f"placement {placement_id}" not in message and JOBCENTRE not in message
        probes = [e for e in audit(foundation) if e["action"] == "probe"]
        assert [(p["organisation"], p["order_id"]) for p in probes] == [(AKASSE, order_id)]

    def test_the_placing_organisation_still_learns_which_placement_it_is(
        self, foundation: Foundation
    ) -> None:
        order_id, placement_id = order_with_placement(foundation)
        again = foundation.handle(
            envelope(
                foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": order_id, "cpr": CPR_1}
            )
        )
        assert f"placement {placement_id}" in again["error"]["message"]


class TestPersonalDataTravelSealed:
    def test_a_placement_command_holds_no_cpr_or_note_in_clear(
        self, foundation: Foundation
    ) -> None:
        sent = envelope(
            foundation,
            JOBCENTRE,
            K.REGISTER_PLACEMENT,
            {"order_id": 1, "cpr": CPR_1, "note": "Kender Mette Hansen"},
        )
        wire = sent.to_json()
        assert CPR_1 not in wire and "Mette" not in wire
        opened = open_payload(sent.payload, sent.command_id, key_of(foundation, JOBCENTRE))
        assert (opened["cpr"], opened["note"]) == (CPR_1, "Kender Mette Hansen")

    def test_the_ledger_and_dead_letters_hold_no_cpr(self, foundation: Foundation) -> None:
        order_id, _ = order_with_placement(foundation)
        foundation.handle(
            envelope(
                foundation, EMPLOYER, K.REGISTER_PLACEMENT, {"order_id": order_id, "cpr": CPR_1}
            )
        )
        dump = json.dumps(
            [dict(r) for r in rows(foundation, "SELECT * FROM commands")]
            + [dict(r) for r in rows(foundation, "SELECT * FROM dead_letters")]
        )
        assert CPR_1 not in dump
        assert len(rows(foundation, "SELECT * FROM dead_letters")) == 1

    def test_a_field_sealed_with_another_key_is_a_forbidden_dead_letter(
        self, foundation: Foundation
    ) -> None:
        key = key_of(foundation, JOBCENTRE)
        command_id = "sealed-0001"
        wrong = seal_payload(
            {"order_id": 1, "cpr": CPR_1}, command_id, SigningKey.generate(JOBCENTRE)
        )
        sent = new_envelope(K.REGISTER_PLACEMENT, JOBCENTRE, wrong, command_id=command_id, key=key)
        reply = foundation.handle(sent)
        assert reply["error"]["code"] == "forbidden"
        (letter,) = list_dead_letters(foundation.store.connection())
        assert (letter["code"], letter["command_id"]) == ("forbidden", command_id)
        assert rows(foundation, "SELECT * FROM commands") == []

    def test_a_resend_sealed_afresh_is_the_same_command(self, foundation: Foundation) -> None:
        order_id = foundation.handle(
            envelope(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()})
        )["result"]["id"]
        payload = {"order_id": order_id, "cpr": CPR_1}
        first = foundation.handle(
            envelope(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, payload, command_id="place-001")
        )
        resent = envelope(
            foundation, JOBCENTRE, K.REGISTER_PLACEMENT, payload, command_id="place-001"
        )
        assert foundation.handle(resent)["result"]["id"] == first["result"]["id"]
        assert len(rows(foundation, "SELECT * FROM placements")) == 1


def letter_of(f: Foundation, sent: Envelope) -> dict[str, Any]:
    (letter,) = [
        dict(r) for r in rows(f, "SELECT * FROM dead_letters") if r["command_id"] == sent.command_id
    ]
    return letter


def resign(f: Foundation, raw: str, *, source: str, code: str, died_at: Any = None) -> str:
    with f.store.write() as conn:
        return keys.resign(
            conn,
            raw,
            source=source,
            code=code,
            died_at=died_at or utc_now(),
            window_ms=3_600_000,
            retried_at=utc_now(),
            max_age_ms=3_600_000,
            read_window_ms=60_000,
        )


class TestRetriesNeverWidenTrust:
    def test_a_command_of_a_revoked_key_is_never_resigned(self, foundation: Foundation) -> None:
        stolen = key_of(foundation, EMPLOYER)
        with foundation.store.write() as conn:
            keys.revoke(conn, EMPLOYER, stolen.key_id, utc_now())
            keys.create(conn, EMPLOYER, utc_now())
        thief = new_envelope(
            K.CHANGE_ORDER_STATUS, EMPLOYER, {"order_id": 1, "status": "closed_filled"}, key=stolen
        )
        assert foundation.handle(thief)["error"]["code"] == "forbidden"
        letter = letter_of(foundation, thief)
        with pytest.raises(InvalidInput, match="cannot be retried"):
            resign(foundation, letter["original"], source=letter["source"], code=letter["code"])
        # Even as if it had crashed: the key was revoked before the command was sent.
        with pytest.raises(InvalidInput, match="has revoked since"):
            resign(foundation, thief.to_json(), source="crashed", code="unavailable")

    def test_an_expired_replay_is_kept_but_never_retried(self, foundation: Foundation) -> None:
        old = envelope(
            foundation,
            JOBCENTRE,
            K.REGISTER_ORDER,
            {"order": order_doc()},
            sent_at=utc_now() - timedelta(hours=2),
        )
        assert foundation.handle(old)["error"]["code"] == "forbidden"
        letter = letter_of(foundation, old)
        with pytest.raises(InvalidInput, match="cannot be retried"):
            resign(foundation, letter["original"], source=letter["source"], code=letter["code"])
        with pytest.raises(InvalidInput, match="late replay"):
            resign(foundation, old.to_json(), source="crashed", code="unavailable")

    def test_a_crashed_command_of_a_key_revoked_later_is_never_resigned(
        self, foundation: Foundation
    ) -> None:
        old_key = key_of(foundation, JOBCENTRE)
        sent = envelope(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": 1, "cpr": CPR_1})
        with foundation.store.write() as conn:
            keys.create(conn, JOBCENTRE, utc_now())
            keys.revoke(conn, JOBCENTRE, old_key.key_id, utc_now())
        with pytest.raises(InvalidInput, match="has revoked since"):
            resign(foundation, sent.to_json(), source="crashed", code="unavailable")

    def test_a_crashed_command_of_a_rotated_key_is_resigned_and_sealed_anew(
        self, foundation: Foundation
    ) -> None:
        old_key = key_of(foundation, JOBCENTRE)
        sent = envelope(foundation, JOBCENTRE, K.REGISTER_PLACEMENT, {"order_id": 1, "cpr": CPR_1})
        with foundation.store.write() as conn:
            keys.create(conn, JOBCENTRE, utc_now())
        again = decode_envelope(
            resign(foundation, sent.to_json(), source="crashed", code="unavailable")
        )
        assert again.command_id == sent.command_id
        with foundation.store.read() as conn:
            valid = keys.valid_keys(conn, JOBCENTRE)
        assert old_key.key_id in valid, "a rotation leaves the old key valid"
        signer = valid[str(again.key_id)]
        assert open_payload(again.payload, again.command_id, signer)["cpr"] == CPR_1


class InterruptAt:
    """A connection that raises an asynchronous-style exception after one statement."""

    def __init__(self, conn: sqlite3.Connection, statement: str) -> None:
        self.conn, self.statement = conn, statement

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith(self.statement) and self.statement == "COMMIT":
            raise KeyboardInterrupt  # before the commit happens
        result = self.conn.execute(sql, *args)
        if sql.startswith(self.statement):
            raise KeyboardInterrupt  # right after the statement returned
        return result

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction


class TestTransactionsAlwaysEnd:
    @pytest.mark.parametrize(
        "statement",
        [
            pytest.param("BEGIN IMMEDIATE", id="as-begin-returns"),
            pytest.param("INSERT", id="mid-transaction"),
            pytest.param("COMMIT", id="at-commit"),
        ],
    )
    def test_an_interrupted_write_releases_the_write_lock(
        self, tmp_path: Path, statement: str
    ) -> None:
        db = SqliteStore(tmp_path / "store.db", busy_timeout_ms=200)
        real = db.connection().raw
        db._local.tx = SqliteTx(InterruptAt(real, statement))  # type: ignore[arg-type]
        with pytest.raises(KeyboardInterrupt), db.write() as conn:
            conn.execute("INSERT INTO foundation_secrets (name, value) VALUES ('a', 'b')")
        assert not real.in_transaction
        # Another writer (another thread, its own connection) gets the lock at once.
        outcome: list[str] = []

        def other_writer() -> None:
            with db.write() as conn:
                conn.execute("INSERT INTO foundation_secrets (name, value) VALUES ('c', 'd')")
            outcome.append("written")

        thread = threading.Thread(target=other_writer)
        thread.start()
        thread.join(10)
        assert outcome == ["written"]
        names = [r[0] for r in real.execute("SELECT name FROM foundation_secrets")]
        assert names == ["c"]
        db.close()

    def test_an_interrupted_read_ends_its_snapshot(self, tmp_path: Path) -> None:
        db = SqliteStore(tmp_path / "store.db")
        real = db.connection().raw
        db._local.tx = SqliteTx(InterruptAt(real, "BEGIN"))  # type: ignore[arg-type]
        with pytest.raises(KeyboardInterrupt), db.read():
            pass
        assert not real.in_transaction
        db.close()


#: A payload nested 40 levels deep: far past any command's shape.
NESTED: Any = {}
for _ in range(40):
    NESTED = {"a": [NESTED]}


class TestHostileEnvelopes:
    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param("[" * 100_000 + "]" * 100_000, id="deeply-nested-array"),
            pytest.param(json.dumps({"schema_version": 1, "payload": NESTED}), id="nested-payload"),
            pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
            pytest.param("", id="empty"),
        ],
    )
    def test_is_refused_as_invalid_input(self, raw: str | bytes) -> None:
        with pytest.raises(InvalidInput):
            decode_envelope(raw)

    def test_a_sent_at_without_time_zone_is_refused_not_crashed(
        self, foundation: Foundation
    ) -> None:
        sent = envelope(foundation, JOBCENTRE, K.GET_ORDER, {"order_id": 1})
        document = json.loads(sent.to_json())
        document["sent_at"] = "2026-12-02T10:00:00"
        with pytest.raises(InvalidInput, match="sent_at"):
            decode_envelope(json.dumps(document))


def test_store_helpers_are_keyed_by_principal(any_store: Store) -> None:
    db = any_store
    with db.write() as conn:
        for principal in (JOBCENTRE, AKASSE):
            assert store.record_command(
                conn,
                command_id="same-id-01",
                kind="register_order",
                principal=principal,
                digest="d",
                outcome="rejected",
                reply={},
                at=utc_now(),
            )
        assert store.forget_rejection(conn, AKASSE, "same-id-01")
        assert store.ledger_entry(conn, JOBCENTRE, "same-id-01") is not None
        assert store.ledger_entry(conn, AKASSE, "same-id-01") is None
    db.close()


class TestOnlyAuthenticCommandsAreAnswered:
    def test_a_forgery_gets_no_reply_key(self, foundation: Foundation) -> None:
        key_of(foundation, JOBCENTRE)
        forged = new_envelope(
            K.GET_ORDER, JOBCENTRE, {"order_id": 1}, key=SigningKey.generate(JOBCENTRE)
        )
        answer = foundation.answer(forged)
        assert answer.reply["error"]["code"] == "forbidden" and answer.key is None

    def test_the_holder_of_a_revoked_key_is_told_under_that_key(
        self, foundation: Foundation
    ) -> None:
        revoked = key_of(foundation, JOBCENTRE)
        with foundation.store.write() as conn:
            keys.revoke(conn, JOBCENTRE, revoked.key_id, utc_now())
        answer = foundation.answer(
            new_envelope(K.GET_ORDER, JOBCENTRE, {"order_id": 1}, key=revoked)
        )
        assert answer.reply["error"]["code"] == "forbidden"
        assert answer.key is not None and answer.key.key_id == revoked.key_id


class TestEmployersNeverTouchTheInternalComment:
    """The internal comment is the authorities' own (SPEC.md): an employer neither sets nor
    overwrites it; the refusal names the field and changes nothing."""

    def test_an_employer_registering_with_an_internal_comment_is_refused(
        self, foundation: Foundation
    ) -> None:
        reply = foundation.handle(
            envelope(foundation, EMPLOYER, K.REGISTER_ORDER, {"order": order_doc()})
        )
        assert reply["error"]["code"] == "forbidden"
        assert reply["error"]["field"] == "internal_comment"
        assert rows(foundation, "SELECT id FROM orders") == []

    @pytest.mark.parametrize(
        "comment",
        [pytest.param("Ring ikke til os", id="overwrite"), pytest.param(None, id="clear")],
    )
    def test_an_employer_cannot_overwrite_the_internal_comment(
        self, foundation: Foundation, comment: str | None
    ) -> None:
        order = foundation.handle(
            envelope(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()})
        )["result"]
        patch = {"internal_comment": comment}
        reply = foundation.handle(
            envelope(
                foundation,
                EMPLOYER,
                K.UPDATE_ORDER,
                {"order_id": order["id"], "expected_version": 1, "patch": patch},
            )
        )
        assert (reply["error"]["code"], reply["error"]["field"]) == (
            "forbidden",
            "internal_comment",
        )
        seen = foundation.handle(
            envelope(foundation, JOBCENTRE, K.GET_ORDER, {"order_id": order["id"]})
        )["result"]
        assert (seen["version"], seen["internal_comment"]) == (1, order["internal_comment"])

    def test_an_authority_still_sets_it(self, foundation: Foundation) -> None:
        order = foundation.handle(
            envelope(foundation, AKASSE, K.REGISTER_ORDER, {"order": order_doc()})
        )["result"]
        reply = foundation.handle(
            envelope(
                foundation,
                JOBCENTRE,
                K.UPDATE_ORDER,
                {
                    "order_id": order["id"],
                    "expected_version": 1,
                    "patch": {"internal_comment": "x"},
                },
            )
        )
        assert reply["result"]["internal_comment"] == "x"


TOO_BIG = 2**63


class TestIdsAreBounded:
    """An id past what the engines store (2**63 - 1) is a validation error naming its
    field, never an overflow retried into ``unavailable``."""

    @pytest.mark.parametrize(
        ("kind", "payload", "field"),
        [
            pytest.param(K.GET_ORDER, {"order_id": TOO_BIG}, "order_id", id="read"),
            pytest.param(
                K.UPDATE_ORDER,
                {"order_id": TOO_BIG, "expected_version": 1, "patch": {"positions": 2}},
                "order_id",
                id="write",
            ),
            pytest.param(
                K.UPDATE_ORDER,
                {"order_id": 1, "expected_version": TOO_BIG, "patch": {"positions": 2}},
                "expected_version",
                id="version",
            ),
            pytest.param(
                K.CHANGE_PLACEMENT_STATUS,
                {"order_id": 1, "placement_id": TOO_BIG, "status": "hired"},
                "placement_id",
                id="placement",
            ),
            pytest.param(
                K.FOLLOW, {"caseworker": "anne", "order_id": TOO_BIG}, "order_id", id="follow"
            ),
            pytest.param(K.INBOX, {"since": TOO_BIG}, "since", id="cursor"),
            pytest.param(K.ORDER_CHANGES, {"since": f"e1:{TOO_BIG}"}, "since", id="epoch-cursor"),
        ],
    )
    def test_an_id_too_big_for_the_store_is_refused_naming_its_field(
        self, foundation: Foundation, kind: CommandKind, payload: dict[str, Any], field: str
    ) -> None:
        reply = foundation.answer(envelope(foundation, JOBCENTRE, kind, payload)).reply
        assert reply["error"]["code"] == "validation_error", reply
        assert reply["error"]["field"] == field

    def test_the_largest_id_is_an_ordinary_miss(self, foundation: Foundation) -> None:
        reply = foundation.handle(
            envelope(foundation, JOBCENTRE, K.GET_ORDER, {"order_id": TOO_BIG - 1})
        )
        assert reply["error"]["code"] == "not_found"


class TestAnonymisationReachesTheLedger:
    """After retention the person is gone from the command ledger too: the stored replies
    of the placement's commands and the digests of the payloads that named the person."""

    def test_command_result_of_an_anonymised_placement_shows_no_note(
        self, foundation: Foundation
    ) -> None:
        order = foundation.handle(
            envelope(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()})
        )["result"]
        placed = envelope(
            foundation,
            JOBCENTRE,
            K.REGISTER_PLACEMENT,
            {"order_id": order["id"], "cpr": CPR_1, "note": "ringede mandag, syg"},
        )
        placement = foundation.handle(placed)["result"]
        changed = envelope(
            foundation,
            JOBCENTRE,
            K.CHANGE_PLACEMENT_STATUS,
            {
                "order_id": order["id"],
                "placement_id": placement["id"],
                "status": "interview",
                "note": "samtale torsdag",
            },
        )
        assert foundation.handle(changed)["ok"]
        other = foundation.handle(
            envelope(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()})
        )["result"]
        kept = envelope(
            foundation,
            JOBCENTRE,
            K.REGISTER_PLACEMENT,
            {"order_id": other["id"], "cpr": CPR_1, "note": "stadig aktuel"},
        )
        assert foundation.handle(kept)["ok"]
        closing = {"order_id": order["id"], "status": "closed_filled"}
        assert foundation.handle(envelope(foundation, JOBCENTRE, K.CHANGE_ORDER_STATUS, closing))[
            "ok"
        ]
        done = foundation.handle(
            envelope(foundation, SYSTEM, K.ANONYMISE_PLACEMENTS, {"retention_days": 0})
        )
        assert done["result"]["anonymised"] == 1

        def stored(sent: Envelope) -> dict[str, Any]:
            reply = foundation.handle(
                envelope(foundation, JOBCENTRE, K.COMMAND_RESULT, {"command_id": sent.command_id})
            )
            result: dict[str, Any] = reply["result"]["reply"]["result"]
            return result

        for sent in (placed, changed):
            assert (stored(sent)["cpr"], stored(sent)["note"]) == (None, None)
        assert stored(kept)["note"] == "stadig aktuel", "an open order's placement keeps it"
        digests = {
            row["command_id"]: row["digest"]
            for row in rows(foundation, "SELECT command_id, digest FROM commands")
        }
        assert digests[placed.command_id] == digests[changed.command_id] == "anonymised"
        assert digests[kept.command_id] != "anonymised"
        # A late redelivery of the command gets the anonymised reply, not a reuse error.
        assert foundation.handle(placed)["result"]["note"] is None


class TestFollowsAreBounded:
    """``follow`` answers with the follow it made and a count, so neither the reply nor
    the ledger row grows with the follows; a caseworker follows at most so many things."""

    def test_a_follow_answers_with_that_follow_a_count_and_bounded_lists(
        self, foundation: Foundation
    ) -> None:
        most = follows.REPLY_LIST_MAX
        ids = [
            foundation.handle(
                envelope(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()})
            )["result"]["id"]
            for _ in range(most + 3)
        ]
        replies = [
            foundation.handle(
                envelope(foundation, JOBCENTRE, K.FOLLOW, {"caseworker": "anne", "order_id": i})
            )["result"]
            for i in ids
        ]
        assert {k: replies[1][k] for k in ("order_id", "employer", "placements", "changed")} == {
            "order_id": ids[1],
            "employer": None,
            "placements": False,
            "changed": True,
        }
        assert (replies[1]["count"], replies[1]["orders"], replies[1]["truncated"]) == (
            2,
            ids[:2],
            False,
        )
        last = replies[-1]
        assert (last["count"], last["orders"], last["truncated"]) == (most + 3, ids[:most], True)
        stored = [len(row["reply"]) for row in rows(foundation, "SELECT reply FROM commands")]
        assert len(set(stored[-3:])) == 1, "past the cut, every follow's ledger row is one size"
        listed = foundation.handle(
            envelope(foundation, JOBCENTRE, K.FOLLOWING, {"caseworker": "anne"})
        )["result"]
        assert listed["orders"] == ids, "following gives the whole list"

    def test_a_caseworker_follows_at_most_the_limit(self, any_store: Store) -> None:
        f = Foundation(any_store, max_follows=2)
        ids = [
            f.handle(envelope(f, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()}))["result"][
                "id"
            ]
            for _ in range(3)
        ]

        def follow(order_id: int, caseworker: str = "anne") -> dict[str, Any]:
            payload = {"caseworker": caseworker, "order_id": order_id}
            return f.handle(envelope(f, JOBCENTRE, K.FOLLOW, payload))

        assert [follow(i)["result"]["count"] for i in ids[:2]] == [1, 2]
        refused = follow(ids[2])["error"]
        assert (refused["code"], refused["field"]) == ("validation_error", "caseworker")
        assert "JOBORDRE_MAX_FOLLOWS_PER_CASEWORKER = 2" in refused["message"]
        again = follow(ids[0])["result"]
        assert (again["changed"], again["count"]) == (False, 2), "following again is no new one"
        assert follow(ids[2], "bo")["result"]["count"] == 1, "the limit is per caseworker"
        listed = f.handle(envelope(f, JOBCENTRE, K.FOLLOWING, {"caseworker": "anne"}))
        assert listed["result"]["orders"] == ids[:2]


class TestTextHoldsNoControlCharacters:
    """C0/C1 controls in a text field are refused naming the field, and nothing is stored:
    an escape sequence in a title would clear a caseworker's terminal, plant a link, or
    fake a status line. Tabs and line breaks are layout in text of several lines."""

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            pytest.param({"title": "Tømrer\x1b[2J"}, "order.title", id="title-clear-screen"),
            pytest.param(
                {"title": "\x1b]8;;https://evil.example\x07Tømrer\x1b]8;;\x07"},
                "order.title",
                id="title-osc8-link",
            ),
            pytest.param(
                {"title": "Tømrer\nNy status: Afsluttet"}, "order.title", id="title-newline"
            ),
            pytest.param({"title": "Tømrer\tTømrer"}, "order.title", id="title-tab"),
            pytest.param({"title": "Tømrer\x9b2J"}, "order.title", id="title-c1"),
            pytest.param({"description": "ok\x1b[31m"}, "order.description", id="description"),
            pytest.param(
                {"internal_comment": "\x1b[2J"}, "order.internal_comment", id="internal-comment"
            ),
            pytest.param(
                {"contact": {"name": "Mette\x07", "email": "m@example.dk"}},
                "order.contact.name",
                id="contact-name",
            ),
            pytest.param(
                {
                    "address": {
                        "street": "Rådhuspladsen\r1",
                        "postcode": "1550",
                        "city": "København V",
                        "municipality": "101",
                    }
                },
                "order.address.street",
                id="street",
            ),
        ],
    )
    def test_a_control_character_in_an_order_is_refused_naming_the_field(
        self, foundation: Foundation, changes: dict[str, Any], field: str
    ) -> None:
        reply = foundation.handle(
            envelope(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc(**changes)})
        )
        assert (reply["error"]["code"], reply["error"]["field"]) == ("validation_error", field)
        assert "\x1b" not in reply["error"]["message"], "the value is never echoed"
        assert rows(foundation, "SELECT id FROM orders") == []

    def test_tabs_and_line_breaks_stay_in_a_description(self, foundation: Foundation) -> None:
        text = "Vi søger:\n\t- en tømrer\r\n\t- en lærling"
        reply = foundation.handle(
            envelope(
                foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc(description=text)}
            )
        )
        assert reply["result"]["description"] == text

    @pytest.mark.parametrize(
        ("kind", "payload", "field"),
        [
            pytest.param(
                K.UPDATE_ORDER,
                {"order_id": 1, "expected_version": 1, "patch": {"title": "a\x1b[2J"}},
                "patch.title",
                id="patch-title",
            ),
            pytest.param(
                K.REGISTER_PLACEMENT,
                {"order_id": 1, "cpr": CPR_1, "note": "ring\x1b[2J"},
                "note",
                id="placement-note",
            ),
            pytest.param(
                K.CHANGE_ORDER_STATUS,
                {"order_id": 1, "status": "inactivated", "note": "\x00"},
                "note",
                id="status-note",
            ),
            pytest.param(K.SEARCH_ORDERS, {"text": "tømrer\x1b"}, "text", id="search-text"),
        ],
    )
    def test_a_control_character_in_a_command_is_refused_naming_the_field(
        self, foundation: Foundation, kind: CommandKind, payload: dict[str, Any], field: str
    ) -> None:
        foundation.handle(envelope(foundation, JOBCENTRE, K.REGISTER_ORDER, {"order": order_doc()}))
        reply = foundation.handle(envelope(foundation, JOBCENTRE, kind, payload))
        assert (reply["error"]["code"], reply["error"]["field"]) == ("validation_error", field)
        assert rows(foundation, "SELECT count(*) FROM placements")[0][0] == 0


def unsigned(kind: CommandKind, payload: dict[str, Any], principal: str = JOBCENTRE) -> Envelope:
    """What anyone who can write to Redis can send: an envelope without a signature."""
    return Envelope.model_validate(
        {
            "kind": kind,
            "command_id": f"unsigned-{uuid.uuid4().hex}",
            "principal": principal,
            "correlation_id": "x",
            "sent_at": utc_now(),
            "payload": payload,
        }
    )


class TestRefusedMessagesAreBounded:
    """A message nobody vouches for is kept with its reason, but not whole: its texts are
    cut with a marker and the size, and past a number per principal and hour only the
    reason and size are kept."""

    def test_an_unsigned_250_kb_command_is_kept_cut_with_its_size(
        self, foundation: Foundation
    ) -> None:
        big = unsigned(K.REGISTER_ORDER, {"order": order_doc(description="x" * 250_000)})
        foundation.handle(big)
        letter = letter_of(foundation, big)
        assert letter["code"] == "forbidden" and letter["original"] is None
        assert len(letter["message"]) < dead_letters.UNTRUSTED_KEPT_CHARS + 200
        assert f"{dead_letters.UNTRUSTED_KEPT_CHARS} of " in letter["message"]
        assert "characters kept]" in letter["message"]

    def test_past_the_hourly_number_per_principal_only_reason_and_size_are_kept(
        self, foundation: Foundation
    ) -> None:
        def refuse(principal: str) -> int:
            with foundation.store.write() as conn:
                return store.record_dead_letter(
                    conn,
                    at=utc_now(),
                    source="rejected",
                    code="forbidden",
                    reason="command from x is not signed",
                    message="m" * 5000,
                    principal=principal,
                    original="o" * 5000,
                )

        with foundation.store.write() as conn:
            for _ in range(dead_letters.UNTRUSTED_KEPT_PER_PRINCIPAL_PER_HOUR):
                store.record_dead_letter(
                    conn,
                    at=utc_now(),
                    source="rejected",
                    code="forbidden",
                    reason="r",
                    message="m",
                    principal=JOBCENTRE,
                )
        flooded = refuse(JOBCENTRE)
        other = refuse(AKASSE)
        with foundation.store.read() as conn:
            kept = {
                row["id"]: row
                for row in conn.execute(
                    "SELECT id, message, original, reason FROM dead_letters WHERE id IN (?, ?)",
                    (flooded, other),
                ).fetchall()
            }
        assert kept[flooded]["original"] is None
        assert kept[flooded]["message"].startswith("…[not kept: more than")
        assert "0 of 5000 characters kept" in kept[flooded]["message"]
        assert kept[flooded]["reason"] == "command from x is not signed"
        assert (len(kept[other]["message"]), kept[other]["original"]) == (5000, "o" * 5000)

    def test_a_signed_rejected_command_is_kept_whole_for_a_retry(
        self, foundation: Foundation
    ) -> None:
        note = "n" * 1900
        sent = envelope(
            foundation,
            JOBCENTRE,
            K.REGISTER_PLACEMENT,
            {"order_id": 99, "cpr": CPR_1, "note": note},
        )
        assert foundation.handle(sent)["error"]["code"] == "not_found"
        assert letter_of(foundation, sent)["original"] == sent.to_json()
