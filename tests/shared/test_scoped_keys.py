"""A scoped key may do only what its scope allows; the notifier's key cannot act.

A ``notify`` key is bound to one caseworker: it sends that caseworker's ``following`` and
``unfollow`` and the organisation's ``inbox`` with ``headers_only``, and everything else it
signs is refused as ``forbidden`` before the operation runs (nothing read, nothing changed, the
attempt kept as a dead letter). Driven against the foundation on both engines.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared import keys
from shared.clock import utc_now
from shared.commands import CommandKind
from shared.envelope import new_envelope
from shared.errors import InvalidInput
from shared.foundation import Foundation
from shared.signing import SigningKey
from shared.store import Store
from tests.factories import CPR_1, order_doc
from tests.shared.test_trust import resign

K = CommandKind
JOBCENTRE = "jobcentre:101"
CASEWORKER = "kw101"


@pytest.fixture
def foundation(any_store: Store) -> Foundation:
    """A foundation on a fresh store of each engine (SQLite, PostgreSQL)."""
    return Foundation(any_store, max_age_ms=60_000)


def full_key(f: Foundation) -> SigningKey:
    with f.store.write() as conn:
        return keys.create(conn, JOBCENTRE, utc_now())


def notify_key(f: Foundation, caseworker: str = CASEWORKER) -> SigningKey:
    with f.store.write() as conn:
        return keys.create(conn, JOBCENTRE, utc_now(), scope=keys.NOTIFY, caseworker=caseworker)


def send(
    f: Foundation,
    key: SigningKey,
    kind: CommandKind,
    payload: dict[str, Any],
    caseworker: str | None = CASEWORKER,
) -> dict[str, Any]:
    return f.handle(new_envelope(kind, JOBCENTRE, payload, key=key, caseworker=caseworker))


def count(f: Foundation, table: str) -> int:
    return int(f.store.connection().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
def placed(foundation: Foundation) -> int:
    """An order of the jobcentre with a placement, which its caseworker follows."""
    key = full_key(foundation)
    order = send(foundation, key, K.REGISTER_ORDER, {"order": order_doc()})
    order_id: int = order["result"]["id"]
    assert send(foundation, key, K.REGISTER_PLACEMENT, {"order_id": order_id, "cpr": CPR_1})["ok"]
    follow = {"caseworker": CASEWORKER, "order_id": order_id}
    assert send(foundation, key, K.FOLLOW, follow)["ok"]
    return order_id


class TestANotifyKeyDoesWhatTheNotifierNeeds:
    def test_it_reads_its_caseworkers_follows(self, foundation: Foundation, placed: int) -> None:
        reply = send(foundation, notify_key(foundation), K.FOLLOWING, {"caseworker": CASEWORKER})
        assert reply["ok"], reply
        assert reply["result"]["orders"] == [placed]

    def test_it_reads_the_inbox_headers(self, foundation: Foundation, placed: int) -> None:
        reply = send(
            foundation, notify_key(foundation), K.INBOX, {"since": "0", "headers_only": True}
        )
        assert reply["ok"], reply
        assert {e["order_id"] for e in reply["result"]["events"]} == {placed}

    def test_it_stops_its_caseworker_following_an_order(
        self, foundation: Foundation, placed: int
    ) -> None:
        key = notify_key(foundation)
        reply = send(foundation, key, K.UNFOLLOW, {"caseworker": CASEWORKER, "order_id": placed})
        assert reply["ok"], reply
        following = send(foundation, key, K.FOLLOWING, {"caseworker": CASEWORKER})
        assert following["result"]["orders"] == []

    def test_the_key_file_and_the_store_remember_the_scope(self, foundation: Foundation) -> None:
        key = notify_key(foundation)
        assert SigningKey.from_json(key.to_json()) == key
        with foundation.store.read() as conn:
            stored = keys.valid_keys(conn, JOBCENTRE)[key.key_id]
            (listed,) = keys.listing(conn, JOBCENTRE)
        assert (stored.scope, stored.caseworker) == ("notify", CASEWORKER)
        assert (listed["scope"], listed["caseworker"]) == ("notify", CASEWORKER)


FORBIDDEN_READS = [
    pytest.param(K.INBOX, {"since": "0"}, CASEWORKER, id="inbox-with-the-orders-and-logs"),
    pytest.param(
        K.FOLLOWING, {"caseworker": "other"}, CASEWORKER, id="another-caseworkers-follows"
    ),
    pytest.param(K.FOLLOWING, {"caseworker": CASEWORKER}, "other", id="as-another-caseworker"),
    pytest.param(K.FOLLOWING, {"caseworker": CASEWORKER}, None, id="as-no-caseworker"),
    pytest.param(
        K.INBOX, {"since": "0", "headers_only": True}, None, id="inbox-headers-as-no-caseworker"
    ),
    pytest.param(K.SEARCH_ORDERS, {}, CASEWORKER, id="search"),
    pytest.param(K.GET_ORDER, {"order_id": 1}, CASEWORKER, id="get-order"),
    pytest.param(K.PLACEMENT_LOG, {"order_id": 1}, CASEWORKER, id="placement-log-with-cprs"),
    pytest.param(K.AUDIT_PERSON, {"cpr": CPR_1}, CASEWORKER, id="audit-a-person"),
]


class TestANotifyKeyCannotDoAnythingElse:
    @pytest.mark.parametrize(("kind", "payload", "caseworker"), FORBIDDEN_READS)
    def test_a_read_beyond_the_scope_is_forbidden_and_shows_nothing(
        self,
        foundation: Foundation,
        placed: int,
        kind: CommandKind,
        payload: dict[str, Any],
        caseworker: str | None,
    ) -> None:
        accesses = count(foundation, "access_log")
        reply = send(foundation, notify_key(foundation), kind, payload, caseworker)
        assert not reply["ok"]
        assert reply["error"]["code"] == "forbidden"
        assert "scope notify" in reply["error"]["message"]
        assert "result" not in reply
        assert count(foundation, "access_log") == accesses

    @pytest.mark.parametrize(
        ("kind", "payload"),
        [
            pytest.param(
                K.REGISTER_PLACEMENT, {"order_id": 1, "cpr": CPR_1}, id="register-placement"
            ),
            pytest.param(
                K.CHANGE_ORDER_STATUS, {"order_id": 1, "status": "inactivated"}, id="status"
            ),
            pytest.param(K.FOLLOW, {"caseworker": CASEWORKER, "employer": "25313763"}, id="follow"),
            pytest.param(
                K.UNFOLLOW, {"caseworker": "other", "order_id": 1}, id="unfollow-for-another"
            ),
            pytest.param(K.REGISTER_ORDER, {"order": order_doc()}, id="register-order"),
        ],
    )
    def test_a_write_is_forbidden_and_changes_nothing(
        self, foundation: Foundation, placed: int, kind: CommandKind, payload: dict[str, Any]
    ) -> None:
        before = {t: count(foundation, t) for t in ("orders", "placements", "follows", "events")}
        letters = count(foundation, "dead_letters")
        reply = send(foundation, notify_key(foundation), kind, payload)
        assert reply["error"]["code"] == "forbidden", reply
        assert {t: count(foundation, t) for t in before} == before
        assert count(foundation, "dead_letters") == letters + 1

    def test_the_organisations_own_key_is_not_limited(
        self, foundation: Foundation, placed: int
    ) -> None:
        notify_key(foundation)
        reply = send(foundation, full_key(foundation), K.PLACEMENT_LOG, {"order_id": placed})
        assert reply["ok"], reply

    def test_a_command_of_a_notify_key_is_never_resigned_for_a_retry(
        self, foundation: Foundation, placed: int
    ) -> None:
        sent = new_envelope(
            K.GET_ORDER,
            JOBCENTRE,
            {"order_id": placed},
            key=notify_key(foundation),
            caseworker=CASEWORKER,
        )
        with pytest.raises(InvalidInput, match="of scope notify"):
            resign(foundation, sent.to_json(), source="crashed", code="unavailable")


@pytest.mark.parametrize(
    ("principal", "scope", "caseworker", "field"),
    [
        pytest.param(JOBCENTRE, "notify", None, "caseworker", id="scope-without-caseworker"),
        pytest.param(JOBCENTRE, None, CASEWORKER, "caseworker", id="caseworker-without-scope"),
        pytest.param(JOBCENTRE, "admin", CASEWORKER, "scope", id="unknown-scope"),
        pytest.param(JOBCENTRE, "notify", "no spaces", "caseworker", id="bad-caseworker"),
        pytest.param("system", "notify", CASEWORKER, "scope", id="the-foundations-own-key"),
    ],
)
def test_a_scoped_key_is_made_only_as_described(
    any_store: Store, principal: str, scope: str | None, caseworker: str | None, field: str
) -> None:
    with any_store.write() as conn, pytest.raises(InvalidInput) as raised:
        keys.create(conn, principal, utc_now(), scope=scope, caseworker=caseworker)
    assert raised.value.field == field
    with any_store.read() as conn:
        assert keys.listing(conn, principal) == []
