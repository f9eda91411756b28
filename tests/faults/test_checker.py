"""The nemesis checker on hand-made histories: a clean run has no anomaly, and each kind
of damage is named with the command ids involved."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.faults.checker import Evidence, check, longest_gap

CPR = "0101901234"


def send(t: float, command_id: str, kind: str, attempt: int = 1, **about: Any) -> dict[str, Any]:
    return {
        "t": t,
        "client": "jc",
        "ev": "send",
        "id": command_id,
        "kind": kind,
        "write": kind not in ("search_orders", "get_order"),
        "attempt": attempt,
        **about,
    }


def answer(t: float, command_id: str, **result: Any) -> dict[str, Any]:
    return {"t": t, "client": "jc", "ev": "answer", "id": command_id, "result": result}


def clean() -> Evidence:
    """Order 1 registered (answered after a resend), its status changed, a placement
    registered and moved on; one read; the stream and a notifier complete."""
    history = [
        send(1.0, "c-reg", "register_order", title="Nemesis jc 0001"),
        {"t": 6.0, "client": "jc", "ev": "unavailable", "id": "c-reg", "message": "no reply"},
        send(6.3, "c-reg", "register_order", attempt=2, title="Nemesis jc 0001"),
        answer(6.5, "c-reg", id=1, version=1, status="processing"),
        send(7.0, "c-status", "change_order_status", order_id=1, expected_version=1),
        answer(7.2, "c-status", id=1, version=2, status="inactivated"),
        send(7.5, "c-place", "register_placement", order_id=1, cpr_ref=1),
        answer(7.7, "c-place", id=10, status="placed"),
        send(8.0, "c-person", "change_placement_status", order_id=1, placement_id=10),
        answer(8.2, "c-person", id=10, status="interview"),
        send(8.5, "c-read", "search_orders"),
        answer(8.6, "c-read"),
    ]
    ledger = {
        "c-reg": {"outcome": "ok", "reply": {"ok": True, "result": {"id": 1, "version": 1}}},
        "c-status": {"outcome": "ok", "reply": {"ok": True, "result": {"id": 1, "version": 2}}},
        "c-place": {"outcome": "ok", "reply": {"ok": True, "result": {"id": 10}}},
        "c-person": {"outcome": "ok", "reply": {"ok": True, "result": {"id": 10}}},
    }
    events = [
        {"seq": 1, "type": "order_registered", "order_id": 1, "command_id": "c-reg", "version": 1},
        {
            "seq": 2,
            "type": "order_status_changed",
            "order_id": 1,
            "command_id": "c-status",
            "version": 2,
        },
        {
            "seq": 3,
            "type": "placement_log_updated",
            "order_id": 1,
            "command_id": "c-place",
            "version": 2,
        },
        {
            "seq": 4,
            "type": "placement_log_updated",
            "order_id": 1,
            "command_id": "c-person",
            "version": 2,
        },
    ]
    return Evidence(
        history=history,
        faults=[{"kind": "redis_master", "start": 2.0, "end": 4.0, "detail": "killed"}],
        ledger=ledger,
        events=events,
        orders={1: {"version": 2, "status": "inactivated", "title": "Nemesis jc 0001"}},
        placements={10: {"status": "interview", "order_id": 1}},
        placement_log=[
            {"id": 100, "placement_id": 10, "from": None, "to": "placed"},
            {"id": 101, "placement_id": 10, "from": "placed", "to": "interview"},
        ],
        stream_seqs=[1, 2, 3, 4],
        notifiers=[{"name": "n", "start_seq": 0, "notified": [1, 2], "expected_seqs": [2, 3, 4]}],
        logs={"host-a/worker.log": f"placement registered, cpr {'*' * 10}\n"},
        cprs=[CPR],
    )


def rules(evidence: Evidence) -> list[tuple[str, list[str]]]:
    return [(a.rule, a.command_ids) for a in check(evidence).anomalies]


def test_a_clean_history_has_no_anomaly_and_its_figures() -> None:
    verdict = check(clean())
    assert verdict.anomalies == []
    figures = verdict.figures
    assert (figures["commands"], figures["writes"], figures["reads"]) == (5, 4, 1)
    assert figures["resends"] == 1
    assert figures["faults"] == {"Redis failover": 1}
    # No answer from 1.0 (the first send) until the resend's answer at 6.5.
    assert figures["per_fault"]["Redis failover"]["longest_gap_s"] == 5.5
    assert figures["per_fault"]["Redis failover"]["unavailable"] == 1


def damaged(change: Any) -> Evidence:
    evidence = copy.deepcopy(clean())
    change(evidence)
    return evidence


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda e: e.ledger.pop("c-status"),
            [("answer", ["c-status"])],
            id="answered-but-not-in-the-ledger",
        ),
        pytest.param(
            lambda e: e.ledger["c-status"]["reply"]["result"].update(version=3),
            [("answer", ["c-status"])],
            id="ledger-holds-another-answer",
        ),
        pytest.param(
            lambda e: e.history.__setitem__(
                5, {"t": 7.2, "client": "jc", "ev": "refused", "id": "c-status", "code": "x"}
            ),
            [("answer", ["c-status"])],
            id="refused-but-applied",
        ),
        pytest.param(
            lambda e: (
                e.events.append({**e.events[1], "seq": 5, "version": 3}) or e.stream_seqs.append(5)
            ),
            [("once", ["c-status"]), ("version", ["c-status"])],
            id="applied-twice",
        ),
        pytest.param(
            lambda e: e.orders.__setitem__(2, {**e.orders[1], "version": 1}),
            [("once", ["c-reg"])],
            id="registration-made-two-orders",
        ),
        pytest.param(
            lambda e: e.placement_log.append(
                {"id": 102, "placement_id": 10, "from": "placed", "to": "interview"}
            ),
            [("chain", ["c-person"])],
            id="placement-change-applied-twice",
        ),
        pytest.param(
            lambda e: e.placements.__setitem__(10, {"status": "hired", "order_id": 1}),
            [("chain", ["c-person"])],
            id="placement-status-not-its-log",
        ),
        pytest.param(
            lambda e: e.orders[1].update(version=3),
            [("version", ["c-status"])],
            id="order-version-past-its-events",
        ),
        pytest.param(
            lambda e: e.events.pop(2) and e.stream_seqs.remove(3),
            [("seq", [])],
            id="seq-gap",
        ),
        pytest.param(
            lambda e: e.stream_seqs.remove(4),
            [("seq", ["c-person"])],
            id="event-never-streamed",
        ),
        pytest.param(
            lambda e: e.notifiers[0]["notified"].append(1),
            [("notifier", [])],
            id="notifier-showed-twice",
        ),
        pytest.param(
            lambda e: e.notifiers[0]["notified"].pop(),
            [("notifier", [])],
            id="notifier-missed",
        ),
        pytest.param(
            lambda e: e.logs.update({"notifier.out": f"cpr {CPR[:6]}-{CPR[6:]}\n"}),
            [("cpr", [])],
            id="cpr-in-a-log-with-a-dash",
        ),
        pytest.param(
            lambda e: e.dead_letters.append(
                {"source": "crashed", "code": "unavailable", "command_id": "c-x", "kind": "k"}
            ),
            [("dead", ["c-x"])],
            id="crashed-dead-letter",
        ),
        pytest.param(
            lambda e: [r.update(t=r["t"] + 40) for r in e.history if r["t"] > 7.1],
            [("stall", ["c-status"])],
            id="no-answer-for-40-seconds",
        ),
        pytest.param(
            lambda e: e.dead_letters.append(
                {"source": "rejected", "code": "x", "command_id": "c-place", "kind": "k"}
            ),
            [("dead", ["c-place"])],
            id="answered-command-rejected-as-dead-letter",
        ),
    ],
)
def test_each_kind_of_damage_is_named_with_its_commands(
    change: Any, expected: list[tuple[str, list[str]]]
) -> None:
    assert rules(damaged(change)) == expected


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: None, id="unanswered-applied-once"),
        pytest.param(
            lambda e: (
                e.ledger.pop("c-reg"),
                e.orders.clear(),
                e.ledger.pop("c-status"),
                e.events.clear(),
                e.stream_seqs.clear(),
                e.placements.clear(),
                e.placement_log.clear(),
                e.notifiers.clear(),
            ),
            id="unanswered-not-applied",
        ),
    ],
)
def test_an_unanswered_write_may_be_applied_once_or_not_at_all(change: Any) -> None:
    def unanswered(evidence: Evidence) -> None:
        evidence.history = [
            r for r in evidence.history if r["id"] in ("c-reg",) and r["ev"] != "answer"
        ]
        change(evidence)

    assert rules(damaged(unanswered)) == []


def test_events_deleted_from_the_stream_on_purpose_are_no_anomaly() -> None:
    def deleted(evidence: Evidence) -> None:
        evidence.stream_seqs.remove(4)
        evidence.deleted_seqs.append(4)

    assert rules(damaged(deleted)) == []


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        pytest.param((100.0, 110.0), [], id="committed-while-the-master-changed"),
        pytest.param((111.0, 120.0), [("seq", ["c-person"])], id="committed-outside"),
    ],
)
def test_a_header_lost_with_a_redis_master_is_no_anomaly(
    window: tuple[float, float], expected: list[tuple[str, list[str]]]
) -> None:
    def lost(evidence: Evidence) -> None:
        evidence.stream_seqs.remove(4)
        evidence.events[3]["at"] = 105.0
        evidence.redis_failovers.append({"start": window[0], "end": window[1]})

    assert rules(damaged(lost)) == expected


def test_a_cpr_anomaly_never_prints_the_cpr() -> None:
    evidence = damaged(lambda e: e.logs.update({"worker.log": CPR}))
    [anomaly] = check(evidence).anomalies
    assert CPR not in str(anomaly)


@pytest.mark.parametrize(
    ("start", "end", "gap"),
    [
        pytest.param(0.0, 1.0, 5.0, id="a-gap-that-starts-before-the-window"),
        pytest.param(10.5, 11.0, 1.0, id="only-gaps-that-overlap-count"),
        pytest.param(20.0, 30.0, 0.0, id="after-the-last-answer"),
    ],
)
def test_longest_gap_counts_gaps_overlapping_the_window(
    start: float, end: float, gap: float
) -> None:
    assert longest_gap([0.0, 5.0, 10.0, 11.0], start, end) == gap
