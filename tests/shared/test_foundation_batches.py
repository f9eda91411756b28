"""Write commands answered in batches (``Foundation.answer_writes``), on both engines: one
transaction for the batch, and for each command the answer it would get alone."""

from __future__ import annotations

from typing import Any, cast

import pytest

from shared import foundation as foundation_module
from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope
from shared.errors import LateFailure, Unavailable
from shared.foundation import Answer, Foundation
from shared.store import Store, list_dead_letters
from tests.factories import CPR_1, CPR_2, CPR_3
from tests.shared.test_foundation import JOBCENTRE, OTHER_JOBCENTRE, count, key_of, register
from tests.shared.test_group_commit import _CommitFails, _note, _noted

K = CommandKind


@pytest.fixture
def foundation(any_store: Store) -> Foundation:
    """A foundation on a fresh store of each engine (SQLite, PostgreSQL)."""
    return Foundation(any_store)


def signed(
    f: Foundation, kind: CommandKind, payload: dict[str, Any], *, signer: str = JOBCENTRE
) -> Envelope:
    """A command of the jobcentre, signed with ``signer``'s key (a forgery if not its own)."""
    return new_envelope(kind, JOBCENTRE, payload, key=key_of(f, signer))


def answers(outcomes: list[Answer | Exception]) -> list[Answer]:
    assert all(isinstance(outcome, Answer) for outcome in outcomes), outcomes
    return cast(list[Answer], outcomes)


def test_a_batch_is_one_transaction_and_each_command_is_answered_as_alone(
    foundation: Foundation,
) -> None:
    order = register(foundation)
    placing = signed(foundation, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1})
    batch = [
        placing,
        signed(foundation, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": "12"}),
        signed(foundation, K.REGISTER_PLACEMENT, {"order_id": 999_999, "cpr": CPR_2}),
        signed(
            foundation,
            K.REGISTER_PLACEMENT,
            {"order_id": order["id"], "cpr": CPR_2},
            signer=OTHER_JOBCENTRE,
        ),
        placing,  # a redelivery in the same batch
    ]
    before = foundation.writes.batches
    ok, invalid, missing, forged, again = answers(foundation.answer_writes(batch))
    assert foundation.writes.batches == before + 1, "one transaction for the whole batch"
    assert ok.reply["ok"] and again.reply["ok"]
    assert again.reply["result"]["id"] == ok.reply["result"]["id"], "answered from the ledger"
    assert again.reply["result"]["cpr"] != CPR_1, "which keeps no CPR"
    assert (invalid.reply["error"]["code"], invalid.reply["error"]["field"]) == (
        "validation_error",
        "cpr",
    )
    assert missing.reply["error"]["code"] == "not_found"
    assert forged.reply["error"]["code"] == "forbidden"
    assert forged.key is None, "a forgery gets no reply"
    assert ok.key is not None and invalid.key is not None
    assert count(foundation, "placements") == 1, "applied once"
    # The rejections are recorded as alone: in the ledger (a resend is answered the same)
    # and as dead letters; the forgery as a dead letter only (its id stays the sender's).
    kept = {letter["command_id"] for letter in list_dead_letters(foundation.store.connection())}
    assert {batch[1].command_id, batch[2].command_id, batch[3].command_id} <= kept
    assert foundation.handle(batch[1]) == invalid.reply
    genuine = new_envelope(
        K.REGISTER_PLACEMENT,
        JOBCENTRE,
        {"order_id": order["id"], "cpr": CPR_2},
        command_id=batch[3].command_id,
        key=key_of(foundation, JOBCENTRE),
    )
    assert foundation.handle(genuine)["ok"], "the forgery did not take the command id"


def test_an_infrastructure_error_fails_its_command_alone(
    foundation: Foundation, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = register(foundation)

    def broken(ctx: Any, payload: Any) -> dict[str, Any]:
        _note("half done")(ctx.conn)  # undone with its savepoint
        raise RuntimeError("a bug")

    monkeypatch.setitem(foundation_module.OPERATIONS, K.CHANGE_ORDER_STATUS, broken)
    placing = signed(foundation, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1})
    closing = signed(
        foundation, K.CHANGE_ORDER_STATUS, {"order_id": order["id"], "status": "inactivated"}
    )
    placed, failed = foundation.answer_writes([placing, closing])
    assert isinstance(placed, Answer) and placed.reply["ok"]
    assert isinstance(failed, RuntimeError), "returned, for its message to be retried"
    assert count(foundation, "placements") == 1
    assert _noted(foundation.store) == []
    # Nothing of the failed command stays, not even its ledger row: its retry applies it.
    monkeypatch.undo()
    assert foundation.handle(closing)["result"]["status"] == "inactivated"


#: A statement that fails as a unique key does, on both engines.
DUPLICATE = "INSERT INTO foundation_secrets (name, value) VALUES ('late', '2')"
#: A statement the server fails as a deadlock's victim (retryable); SQLite has none, and
#: fails the duplicate instead.
DEADLOCK = "DO $$ BEGIN RAISE EXCEPTION 'victim' USING ERRCODE = '40P01'; END $$"


@pytest.mark.parametrize(
    "failing",
    [
        pytest.param(DUPLICATE, id="a-unique-key"),
        pytest.param(DEADLOCK, id="a-deadlock"),
    ],
)
def test_a_command_whose_last_statement_fails_late_fails_alone_and_the_rest_commit(
    foundation: Foundation, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """On PostgreSQL a command's savepoint is released before its last statements are
    answered; one that fails there is found with the next command's wait. The part is then
    done again with each command settled: the failure is its command's alone."""
    order = register(foundation)
    batch = [
        signed(foundation, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": cpr})
        for cpr in (CPR_1, CPR_2, CPR_3)
    ]
    doomed = batch[1].command_id
    log_accesses = foundation_module._log_accesses

    def fails_late(conn: Any, envelope: Envelope, *args: Any) -> None:
        log_accesses(conn, envelope, *args)
        if envelope.command_id == doomed:
            # Sent, not waited for: its error comes with the next command's first read.
            conn.execute("INSERT INTO foundation_secrets (name, value) VALUES ('late', '1')")
            conn.execute(failing if conn.engine == "postgres" else DUPLICATE)

    monkeypatch.setattr(foundation_module, "_log_accesses", fails_late)
    first, failed, third = foundation.answer_writes(batch)
    assert isinstance(first, Answer) and first.reply["ok"]
    assert isinstance(third, Answer) and third.reply["ok"]
    assert isinstance(failed, Exception) and not isinstance(failed, Answer)
    assert not isinstance(failed, LateFailure), "pinned on its command, not the batch's"
    assert count(foundation, "placements") == 2
    with foundation.store.read() as tx:
        late = tx.execute("SELECT COUNT(*) FROM foundation_secrets WHERE name = 'late'")
        assert late.fetchone()[0] == 0, "the failed command left nothing"
        seqs = [row[0] for row in tx.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)), "the first try took no seq"
    monkeypatch.undo()
    assert foundation.handle(batch[1])["ok"], "its retry applies it"


def test_when_the_commit_fails_every_command_fails_and_none_happened(
    foundation: Foundation,
) -> None:
    order = register(foundation)
    failing = Foundation(cast(Store, _CommitFails(foundation.store)))
    batch = [
        signed(foundation, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": cpr})
        for cpr in (CPR_1, CPR_2)
    ] + [signed(foundation, K.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": "12"})]
    outcomes = failing.answer_writes(batch)
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes), outcomes
    assert count(foundation, "placements") == 0
    assert count(foundation, "commands") == 1, "only the order's registration is recorded"


def test_a_batch_of_one_order_s_updates_applies_them_in_order(foundation: Foundation) -> None:
    order = register(foundation)
    updates = [
        signed(
            foundation,
            K.UPDATE_ORDER,
            {"order_id": order["id"], "expected_version": version, "patch": {"positions": n}},
        )
        for n, version in ((2, 1), (3, 2), (4, 2))
    ]
    first, second, stale = answers(foundation.answer_writes(updates))
    assert (first.reply["result"]["version"], second.reply["result"]["version"]) == (2, 3)
    assert stale.reply["error"]["code"] == "version_conflict", "it came after version 3"
    version = foundation.store.connection().execute(
        "SELECT version FROM orders WHERE id = ?", (order["id"],)
    )
    assert version.fetchone()[0] == 3


def test_a_digest_taken_before_the_lock_is_the_ledgers_own(foundation: Foundation) -> None:
    # Once the ledger's key has been read back, batches digest their commands before the
    # write lock: a resend must still be answered from the ledger, and another command
    # under a used id still refused, exactly as when the digest is taken under the lock.
    order = register(foundation)
    second = register(foundation)  # the ledger's key is read back and remembered by now
    first = signed(
        foundation, K.CHANGE_ORDER_STATUS, {"order_id": order["id"], "status": "inactivated"}
    )
    (applied,) = answers(foundation.answer_writes([first]))
    reused = new_envelope(
        K.CHANGE_ORDER_STATUS,
        JOBCENTRE,
        {"order_id": second["id"], "status": "inactivated"},
        command_id=first.command_id,
        key=key_of(foundation, JOBCENTRE),
    )
    again, other = answers(foundation.answer_writes([first, reused]))
    assert applied.reply["ok"] and again.reply == applied.reply, "a resend answered by the ledger"
    refused = other.reply["error"]
    assert (refused["code"], refused["field"]) == ("validation_error", "command_id")
    assert "used before for a different command" in refused["message"]
    assert count(foundation, "events") == 3, "two orders registered, one status changed"
