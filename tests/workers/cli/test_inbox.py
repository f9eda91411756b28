"""§ 137 stk. 1: what every organisation receives without asking, end to end.

Real redis-server, real worker processes, the installed CLI. Order events reach every
authority (R1, R2, R3), placement-log events reach the organisations that placed (R4, S6),
masked for each; delivery survives a worker killed between commit and push.
"""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JOBORDRE, RedisServer, System
from tests.factories import CPR_1, CPR_2, EMPLOYER_A, order_doc

pytestmark = pytest.mark.integration

KBH = "jobcentre:101"
AARHUS = "jobcentre:751"
AKASSE = "akasse:3f"
EMPLOYER = f"employer:{EMPLOYER_A}"


def register(system: System, tmp_path: Path, principal: str, **changes: Any) -> dict[str, Any]:
    if principal.startswith("employer:"):
        changes.setdefault("internal_comment", None)  # the authorities' field (SPEC.md)
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc(**changes)))
    return system.json("order", "register", "--file", str(path), "--as", principal)


def inbox(system: System, principal: str, since: int = 0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = system.json(
        "inbox", "--as", principal, "--since", str(since), "--limit", "1000"
    )["events"]
    return events


def about(events: list[dict[str, Any]], order_id: int) -> list[dict[str, Any]]:
    return [event for event in events if event["order_id"] == order_id]


class Follower:
    """``jobordre inbox --follow --json`` running as a subprocess; lines read by a thread."""

    def __init__(self, system: System, principal: str, since: int = 0) -> None:
        self.process = subprocess.Popen(
            [
                str(JOBORDRE),
                "inbox",
                "--follow",
                "--json",
                "--as",
                principal,
                "--since",
                str(since),
            ],
            env=system.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def next_event(self, timeout_s: float = 20) -> dict[str, Any]:
        try:
            event: dict[str, Any] = json.loads(self.lines.get(timeout=timeout_s))
        except queue.Empty:
            pytest.fail(f"no event within {timeout_s} s")
        return event

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def follower(system: System) -> Iterator[Any]:
    started: list[Follower] = []

    def start(principal: str, since: int = 0) -> Follower:
        started.append(Follower(system, principal, since))
        return started[-1]

    yield start
    for each in started:
        if each.process.poll() is None:
            each.stop()


class TestOrdersReachEveryAuthority:
    def test_an_employers_jobag_order_in_kobenhavn_reaches_jobcentre_aarhus(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path, EMPLOYER)  # R1: address in kommune 101
        events = about(inbox(system, AARHUS), order["id"])
        assert [e["type"] for e in events] == ["order_registered"]
        assert events[0]["order"]["origin"] == "jobag"
        assert events[0]["order"]["address"]["municipality"] == "101"

    def test_an_akasse_update_reaches_jobcentres(self, system: System, tmp_path: Path) -> None:
        order = register(system, tmp_path, AKASSE)
        patch = tmp_path / "patch.json"
        patch.write_text(json.dumps({"positions": 7}))
        system.json(
            "order",
            "update",
            str(order["id"]),
            "--expected-version",
            "1",
            "--file",
            str(patch),
            "--as",
            AKASSE,
        )
        for jobcentre in (KBH, AARHUS):  # R2
            updates = [
                e
                for e in about(inbox(system, jobcentre), order["id"])
                if e["type"] == "order_updated"
            ]
            assert [(e["by"], e["order"]["positions"]) for e in updates] == [(AKASSE, 7)]

    def test_each_of_the_four_statuses_arrives_with_its_meaning(
        self, system: System, tmp_path: Path
    ) -> None:
        inactivated = register(system, tmp_path, EMPLOYER)
        system.json("order", "take", str(inactivated["id"]), "--as", AARHUS)  # R3a
        system.json("order", "status", str(inactivated["id"]), "inactivated", "--as", EMPLOYER)
        filled = register(system, tmp_path, EMPLOYER)
        system.json("order", "status", str(filled["id"]), "closed_filled", "--as", EMPLOYER)
        expiring = register(system, tmp_path, KBH, placement_deadline=date.today().isoformat())
        tomorrow = (date.today() + timedelta(days=1)).isoformat()
        expired = system.json("expire", "--today", tomorrow, "--as", "system")
        assert expiring["id"] in expired["closed"]

        events = inbox(system, KBH)
        statuses = {
            (e["order_id"], e["status"], tuple(e["processing_by"]), e["by"])
            for e in events
            if e["type"] == "order_status_changed"
        }
        assert (inactivated["id"], "processing", (AARHUS,), AARHUS) in statuses  # (a)
        assert (inactivated["id"], "inactivated", (AARHUS,), EMPLOYER) in statuses  # (b)
        assert (filled["id"], "closed_filled", (), EMPLOYER) in statuses  # (c)
        assert (expiring["id"], "closed_expired", (KBH,), "system") in statuses  # (d)

    def test_an_employer_receives_its_own_orders_only(self, system: System, tmp_path: Path) -> None:
        mine = register(system, tmp_path, EMPLOYER)
        other = register(system, tmp_path, KBH, employer={"cvr": "29403473"})
        seen = {e["order_id"] for e in inbox(system, EMPLOYER)}
        assert mine["id"] in seen and other["id"] not in seen


class TestPlacementLogs:
    def test_jobcentre_and_akasse_receive_each_others_updates_masked(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path, EMPLOYER)
        start = {
            p: system.json("inbox", "--as", p, "--limit", "1000")["cursor"] for p in (KBH, AKASSE)
        }
        mine = system.json("placement", "register", str(order["id"]), "--cpr", CPR_1, "--as", KBH)
        theirs = system.json(
            "placement", "register", str(order["id"]), "--cpr", CPR_2, "--as", AKASSE
        )
        system.json(
            "placement",
            "status",
            str(order["id"]),
            str(theirs["id"]),
            "interview",
            "--as",
            EMPLOYER,
        )

        kbh_logs = [
            e
            for e in about(inbox(system, KBH, start[KBH]), order["id"])
            if e["type"] == "placement_log_updated"
        ]
        akasse_logs = [
            e
            for e in about(inbox(system, AKASSE, start[AKASSE]), order["id"])
            if e["type"] == "placement_log_updated"
        ]
        # KBH placed first, so it also receives the a-kasse's placement and the interview.
        assert len(kbh_logs) == 3 and len(akasse_logs) == 2
        # Each event carries its change, masked for the reader: the placement as it stood
        # then and the log entry of the change.
        assert [
            [(p["id"], p["cpr"], p["status"]) for p in e["log"]["placements"]] for e in kbh_logs
        ] == [
            [(mine["id"], CPR_1, "placed")],
            [(theirs["id"], None, "placed")],
            [(theirs["id"], None, "interview")],
        ]
        assert [
            [(p["id"], p["cpr"], p["status"]) for p in e["log"]["placements"]] for e in akasse_logs
        ] == [[(theirs["id"], CPR_2, "placed")], [(theirs["id"], CPR_2, "interview")]]
        assert [entry["to_status"] for e in akasse_logs for entry in e["log"]["entries"]] == [
            "placed",
            "interview",
        ]
        # The whole log is one query away.
        assert all(
            e["full_log"] == {"command": "placement log", "order_id": order["id"]} for e in kbh_logs
        )
        # Employers receive their order's log without any CPR.
        employer_logs = [
            e
            for e in about(inbox(system, EMPLOYER), order["id"])
            if e["type"] == "placement_log_updated"
        ]
        assert employer_logs
        assert all(p["cpr"] is None for e in employer_logs for p in e["log"]["placements"])

    def test_enough_referrals_inactivate_the_order_and_refuse_placements(
        self, system: System, tmp_path: Path
    ) -> None:
        order = register(system, tmp_path, EMPLOYER, max_referrals=1)
        system.json(
            "placement", "register", str(order["id"]), "--cpr", CPR_1, "--referral", "--as", KBH
        )
        now = system.json("order", "get", str(order["id"]), "--as", KBH)
        assert now["status"] == "inactivated"
        refused = system.json(
            "placement", "register", str(order["id"]), "--cpr", CPR_2, "--as", AKASSE, expect=6
        )
        assert refused["error"]["code"] == "invalid_transition"
        changes = [
            e
            for e in about(inbox(system, AARHUS), order["id"])
            if e["type"] == "order_status_changed"
        ]
        assert [(e["status"], e["by"]) for e in changes] == [("inactivated", "system")]


class TestFollow:
    def test_follow_prints_new_events_as_they_happen(
        self, system: System, tmp_path: Path, follower: Any
    ) -> None:
        cursor = system.json("inbox", "--as", AARHUS, "--limit", "1000")["cursor"]
        watching = follower(AARHUS, cursor)
        order = register(system, tmp_path, EMPLOYER)
        event = watching.next_event()
        assert (event["type"], event["order_id"]) == ("order_registered", order["id"])
        system.json("order", "status", str(order["id"]), "inactivated", "--as", EMPLOYER)
        event = watching.next_event()
        assert (event["type"], event["status"]) == ("order_status_changed", "inactivated")

    def test_a_consumer_restarting_from_its_cursor_sees_every_event_once(
        self, system: System, tmp_path: Path, follower: Any
    ) -> None:
        start = system.json("inbox", "--as", KBH, "--limit", "1000")["cursor"]
        first = follower(KBH, start)
        orders = [register(system, tmp_path, AKASSE) for _ in range(3)]
        seen = [first.next_event() for _ in orders]
        first.stop()
        cursor = seen[-1]["cursor"]
        more = [register(system, tmp_path, AKASSE) for _ in range(2)]
        second = follower(KBH, cursor)
        seen += [second.next_event() for _ in more]
        assert [e["order_id"] for e in seen] == [o["id"] for o in orders + more]
        assert len({e["seq"] for e in seen}) == len(seen)
        assert [e["seq"] for e in seen] == [e["seq"] for e in inbox(system, KBH, start)]


def test_a_worker_killed_between_commit_and_push_loses_no_event(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    redis_server = private_redis
    system = System(redis_server, tmp_path / "home")
    system.home.mkdir()
    # The crash window, widened: this worker commits but leaves every push to a sweep that
    # comes only after ten minutes.
    doomed = system.start_worker(
        JOBORDRE_RELAY_PUSH_ON_COMMIT="false", JOBORDRE_RELAY_INTERVAL_MS="600000"
    )
    try:
        order = register(system, tmp_path, EMPLOYER)  # committed: the client has its reply
        with sqlite3.connect(system.db) as conn:
            unpushed = conn.execute(
                "SELECT COUNT(*) FROM events WHERE order_id = ?"
                " AND seq > (SELECT pushed_seq FROM relay_mark)",
                (order["id"],),
            ).fetchone()[0]
        assert unpushed == 1
        assert redis_server.client().xlen("jobordre:events") == 0
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        system.start_worker()  # its first sweep pushes what the dead worker left
        follower = Follower(system, AARHUS)
        try:
            event = follower.next_event()
        finally:
            follower.stop()
        assert (event["type"], event["order_id"]) == ("order_registered", order["id"])
        entries = redis_server.client().xrange("jobordre:events")
        assert [json.loads(fields[b"event"])["order_id"] for _, fields in entries] == [order["id"]]
    finally:
        system.stop_workers()


def test_expiry_from_several_processes_closes_each_order_once(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    system = System(private_redis, tmp_path / "home")
    system.home.mkdir()
    system.start_worker(processes=2, threads=4)
    try:
        due = [
            register(system, tmp_path, KBH, placement_deadline=date.today().isoformat())
            for _ in range(5)
        ]
        tomorrow = (date.today() + timedelta(days=1)).isoformat()
        runs = [
            subprocess.Popen(
                [str(JOBORDRE), "expire", "--today", tomorrow, "--as", "system", "--json"],
                env=system.env(),
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        closed = []
        for run in runs:
            out, _ = run.communicate(timeout=60)
            assert run.returncode == 0
            closed += json.loads(out)["closed"]
        assert sorted(closed) == sorted(order["id"] for order in due)
        with sqlite3.connect(system.db) as conn:
            expired_events = conn.execute(
                "SELECT order_id, COUNT(*) FROM events WHERE type = 'order_status_changed'"
                " GROUP BY order_id"
            ).fetchall()
        assert sorted(expired_events) == sorted((order["id"], 1) for order in due)
    finally:
        system.stop_workers()


def test_inbox_writes_out_control_characters_stored_before_they_were_refused(
    system: System, tmp_path: Path
) -> None:
    order = register(system, tmp_path, KBH, title="Lager")
    # A store from before titles were checked for control characters: the header as kept.
    with sqlite3.connect(system.db) as conn:
        for seq, header in conn.execute(
            "SELECT seq, header FROM events WHERE order_id = ?", (order["id"],)
        ).fetchall():
            fields = json.loads(header)
            fields["title"] = "Lager\x1b[2J\x1b]8;;https://evil.example\x07\nNy status: Afsluttet"
            conn.execute("UPDATE events SET header = ? WHERE seq = ?", (json.dumps(fields), seq))
    shown = system.cli("inbox", "--as", KBH, "--limit", "1000")
    assert shown.code == 0, shown.err
    [line] = [line for line in shown.out.splitlines() if f"jobordre {order['id']} " in line]
    assert "Lager\\x1b[2J" in line
    assert not any(ch in shown.out for ch in "\x1b\x07")
    assert "Ny status" not in shown.out.replace(line, ""), "no line of its own"
