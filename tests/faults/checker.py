"""The checker of a nemesis run: reads what the clients saw, what the nemesis did and what
the store, the stream, the notifiers and the logs hold at the end, and names every anomaly.

Pure: :func:`check` takes an :class:`Evidence` (plain data, made by the harness or by hand
in the unit tests) and returns a :class:`Verdict`; nothing here talks to a server.

The rules (each anomaly names its rule and the command ids involved):

- ``answer``: a write command that got an answer is in the ledger with that answer (same
  outcome; for a result, the same id, version and status); a refusal is in the ledger as a
  refusal with the same code, or was refused before it could be (``forbidden``: an expired
  or unauthentic send).
- ``once``: no command took effect twice: no two events of one command id with the same
  type and order; an order registration made one order with its title if the ledger says
  it was applied, none otherwise.
- ``unanswered``: a write that never got an answer was applied once or not at all (the two
  rules above cover it), and the ledger has no answer for it that differs from the effect.
- ``chain``: every placement's log is an unbroken chain: it starts with ``None → placed``,
  each entry starts where the one before ended, and the last one is the placement's status.
- ``version``: an order's own events (registered, updated, status changed) carry versions
  1, 2, 3, ... in ``seq`` order, and the last is the order's version.
- ``seq``: event ``seq`` runs 1..N without a gap or a repeat, and every seq is on the
  Redis stream, except those the nemesis deleted from it on purpose and those committed
  during a change of Redis master (Redis replicates asynchronously: a header pushed to the
  old master is lost with it, as the README's "Delivery guarantees" says; the notifiers
  fill such gaps from the inbox, which the ``notifier`` rule checks).
- ``notifier``: each notifier showed every followed change after its start exactly once:
  the changes it reports having notified add up to the followed events after its start.
- ``cpr``: no CPR number used by the workload appears in any log line.
- ``dead``: nothing is dead-lettered except commands a rule refused, and no command a
  client got a result for is among the refused dead letters.
- ``stall``: no client went :data:`STALL_S` without any answer while it had commands out
  (one fault at a time leaves one worker host, one Redis and one PostgreSQL serving).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Fields of a result the ``answer`` rule compares with the ledger's stored reply.
COMPARED = ("id", "version", "status")
#: The event types that move an order's version.
ORDER_EVENTS = ("order_registered", "order_updated", "order_status_changed")
#: Refusal codes a command gets before the ledger sees it.
REFUSED_BEFORE_LEDGER = ("forbidden",)
#: What each fault kind is called in the figures.
FAULT_NAMES = {
    "redis_master": "Redis failover",
    "pg_failover": "PostgreSQL failover",
    "host_kill": "host loss",
    "partition": "partition",
    "zombie": "zombie worker",
    "fill_home": "full home",
    "short_stream": "shortened stream",
}
#: How long after a fault healed its effects still count as the fault's, in seconds.
AFTERMATH_S = 5.0
#: The longest time without any answer that is not an anomaly, in seconds.
STALL_S = 30.0


@dataclass
class Evidence:
    """Everything the checker reads; all plain data."""

    #: Every client's history records (see ``tests/faults/workload.py``).
    history: list[dict[str, Any]]
    #: ``{"kind", "start", "end", "detail"}`` per fault, monotonic seconds.
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: command id -> ``{"kind", "principal", "outcome", "reply"}`` (reply parsed).
    ledger: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``{"seq", "type", "order_id", "command_id", "version"}`` per event.
    events: list[dict[str, Any]] = field(default_factory=list)
    #: order id -> ``{"version", "status", "title"}``.
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: placement id -> ``{"status", "order_id"}``.
    placements: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: ``{"id", "placement_id", "from", "to"}`` per placement log entry.
    placement_log: list[dict[str, Any]] = field(default_factory=list)
    #: ``{"source", "code", "command_id", "kind"}`` per dead letter.
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    #: Every seq on the Redis stream at the end.
    stream_seqs: list[int] = field(default_factory=list)
    #: Seqs the nemesis deleted from the stream on purpose.
    deleted_seqs: list[int] = field(default_factory=list)
    #: ``{"name", "start_seq", "notified": [changes per notification], "expected_seqs"}``.
    notifiers: list[dict[str, Any]] = field(default_factory=list)
    #: log name -> its text.
    logs: dict[str, str] = field(default_factory=dict)
    #: The CPR numbers the workload used.
    cprs: list[str] = field(default_factory=list)
    #: Command ids the harness itself sent (setup), not in any client's history.
    harness_ids: set[str] = field(default_factory=set)
    #: ``{"start", "end", "old", "new", "injected"}`` per change of Redis master (epoch
    #: seconds, from the sentinels' logs): from the old master's first ``+sdown`` to the
    #: switch, or to its ``+convert-to-slave`` when it lived on (it took writes meanwhile).
    redis_failovers: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Anomaly:
    rule: str
    message: str
    command_ids: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        ids = f" [commands: {', '.join(self.command_ids[:8])}" if self.command_ids else ""
        more = f" and {len(self.command_ids) - 8} more" if len(self.command_ids) > 8 else ""
        return f"{self.rule}: {self.message}{ids}{more}{']' if ids else ''}"


@dataclass
class Verdict:
    anomalies: list[Anomaly]
    figures: dict[str, Any]


@dataclass
class Command:
    """One command id's story, from the history."""

    id: str
    kind: str
    write: bool
    client: str
    sends: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any] | None:
        """The answer or refusal it got, if any."""
        for outcome in self.outcomes:
            if outcome["ev"] in ("answer", "refused"):
                return outcome
        return None


def commands_of(history: Iterable[dict[str, Any]]) -> dict[str, Command]:
    found: dict[str, Command] = {}
    for record in history:
        command_id = record.get("id")
        if command_id is None:
            continue
        if record["ev"] == "send":
            command = found.get(command_id)
            if command is None:
                command = found[command_id] = Command(
                    command_id, record["kind"], bool(record["write"]), record["client"]
                )
            command.sends.append(record)
        elif command_id in found:
            found[command_id].outcomes.append(record)
    return found


def check(evidence: Evidence) -> Verdict:
    commands = commands_of(evidence.history)
    anomalies: list[Anomaly] = []
    for rule in (
        _answers,
        _once,
        _chains,
        _versions,
        _seqs,
        _notifiers,
        _cprs,
        _dead_letters,
        _stalls,
    ):
        anomalies.extend(rule(evidence, commands))
    return Verdict(anomalies, figures(evidence, commands, anomalies))


def _reply_of(row: dict[str, Any]) -> dict[str, Any]:
    reply = row.get("reply")
    if isinstance(reply, str):
        try:
            reply = json.loads(reply)
        except ValueError:
            return {}
    return reply if isinstance(reply, dict) else {}


def _answers(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    for command in commands.values():
        if not command.write:
            continue
        final = command.final
        row = evidence.ledger.get(command.id)
        if final is None:
            continue
        if final["ev"] == "answer":
            if row is None:
                yield Anomaly(
                    "answer", f"{command.kind} answered but not in the ledger", [command.id]
                )
                continue
            reply = _reply_of(row)
            if row.get("outcome") != "ok":
                yield Anomaly(
                    "answer",
                    f"{command.kind} answered with a result, the ledger says {row.get('outcome')}",
                    [command.id],
                )
                continue
            stored = reply.get("result", reply)
            got = final.get("result") or {}
            differs = [
                key
                for key in COMPARED
                if key in got
                and isinstance(stored, dict)
                and key in stored
                and stored[key] != got[key]
            ]
            if differs:
                yield Anomaly(
                    "answer",
                    f"{command.kind}: the client got "
                    f"{', '.join(f'{k}={got[k]}' for k in differs)}, the ledger holds "
                    f"{', '.join(f'{k}={stored[k]}' for k in differs)}",
                    [command.id],
                )
        else:
            code = final.get("code")
            if row is None:
                if code not in REFUSED_BEFORE_LEDGER:
                    yield Anomaly(
                        "answer",
                        f"{command.kind} refused ({code}) but not in the ledger",
                        [command.id],
                    )
                continue
            if row.get("outcome") == "ok":
                yield Anomaly(
                    "answer",
                    f"{command.kind} refused ({code}) but the ledger says it was applied",
                    [command.id],
                )
                continue
            stored_code = (_reply_of(row).get("error") or {}).get("code")
            if stored_code is not None and stored_code != code:
                yield Anomaly(
                    "answer",
                    f"{command.kind} refused with {code}, the ledger holds {stored_code}",
                    [command.id],
                )


def _once(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    seen: Counter[tuple[str, str, int]] = Counter()
    for event in evidence.events:
        if event.get("command_id"):
            seen[(str(event["command_id"]), str(event["type"]), int(event["order_id"]))] += 1
    for (command_id, kind, order_id), count in sorted(seen.items()):
        if count > 1:
            yield Anomaly(
                "once", f"{count} {kind} events of one command on order {order_id}", [command_id]
            )
    titles = Counter(str(order.get("title")) for order in evidence.orders.values())
    for command in commands.values():
        if command.kind != "register_order" or not command.sends:
            continue
        title = command.sends[0].get("title")
        if title is None:
            continue
        row = evidence.ledger.get(command.id)
        applied = row is not None and row.get("outcome") == "ok"
        count = titles.get(str(title), 0)
        if count != (1 if applied else 0):
            state = "applied" if applied else "not in the ledger as applied"
            yield Anomaly(
                "once", f"register_order {state}, but {count} orders carry its title", [command.id]
            )


def _placement_commands(commands: dict[str, Command], placement_id: int) -> list[str]:
    return [
        command.id
        for command in commands.values()
        if command.kind == "change_placement_status"
        and any(send.get("placement_id") == placement_id for send in command.sends)
    ]


def _chains(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    logs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in sorted(evidence.placement_log, key=lambda e: int(e["id"])):
        logs[int(entry["placement_id"])].append(entry)
    for placement_id, placement in sorted(evidence.placements.items()):
        log = logs.get(placement_id, [])
        problem = None
        if not log or log[0]["from"] is not None or log[0]["to"] != "placed":
            problem = "does not start with its registration"
        else:
            for before, after in itertools.pairwise(log):
                if after["from"] != before["to"]:
                    problem = (
                        f"entry {after['id']} starts at {after['from']}, "
                        f"the one before ended at {before['to']}"
                    )
                    break
            if problem is None and log[-1]["to"] != placement["status"]:
                problem = f"ends at {log[-1]['to']}, the placement is {placement['status']}"
        if problem:
            yield Anomaly(
                "chain",
                f"placement {placement_id}'s log {problem}",
                _placement_commands(commands, placement_id),
            )
    for placement_id in sorted(set(logs) - set(evidence.placements)):
        yield Anomaly("chain", f"log entries for placement {placement_id}, which does not exist")


def _versions(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in sorted(evidence.events, key=lambda e: int(e["seq"])):
        if event["type"] in ORDER_EVENTS:
            by_order[int(event["order_id"])].append(event)
    for order_id, events in sorted(by_order.items()):
        versions = [int(event["version"]) for event in events]
        if versions != list(range(1, len(versions) + 1)):
            broken = next(i for i, v in enumerate(versions) if v != i + 1)
            yield Anomaly(
                "version",
                f"order {order_id}'s versions in seq order run "
                f"{versions[max(0, broken - 2) : broken + 3]} (from the {broken + 1}th event)",
                list(
                    dict.fromkeys(
                        str(e["command_id"])
                        for e in events[max(0, broken - 1) : broken + 1]
                        if e.get("command_id")
                    )
                ),
            )
            continue
        order = evidence.orders.get(order_id)
        if order is not None and int(order["version"]) != versions[-1]:
            yield Anomaly(
                "version",
                f"order {order_id} is at version {order['version']}, "
                f"its last event says {versions[-1]}",
                [str(events[-1].get("command_id"))],
            )


def _seqs(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    seqs = sorted(int(event["seq"]) for event in evidence.events)
    repeated = sorted(seq for seq, n in Counter(seqs).items() if n > 1)
    if repeated:
        yield Anomaly("seq", f"seqs used twice: {repeated[:10]}")
    expected = set(range(1, (seqs[-1] if seqs else 0) + 1))
    missing = sorted(expected - set(seqs))
    if missing:
        yield Anomaly("seq", f"{len(missing)} seqs missing from the event log: {missing[:10]}")
    unstreamed = sorted(set(seqs) - set(evidence.stream_seqs) - set(evidence.deleted_seqs))
    lost = set(lost_in_failovers(evidence, unstreamed))
    unstreamed = [seq for seq in unstreamed if seq not in lost]
    if unstreamed:
        ids = [
            str(e["command_id"])
            for e in evidence.events
            if e["seq"] in unstreamed[:8] and e.get("command_id")
        ]
        yield Anomaly(
            "seq",
            f"{len(unstreamed)} events never pushed to the stream: seqs {unstreamed[:10]}",
            ids,
        )


def lost_in_failovers(evidence: Evidence, seqs: Iterable[int]) -> list[int]:
    """Those of ``seqs`` committed while the Redis master changed (see ``seq``)."""
    at = {int(e["seq"]): e.get("at") for e in evidence.events}
    return [
        seq
        for seq in seqs
        if at.get(seq) is not None
        and any(
            float(f["start"]) <= float(at[seq]) <= float(f["end"])  # type: ignore[arg-type]
            for f in evidence.redis_failovers
        )
    ]


def _notifiers(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    for notifier in evidence.notifiers:
        if notifier.get("start_seq") is None:
            yield Anomaly("notifier", f"{notifier['name']} never said where it started")
            continue
        shown = sum(notifier["notified"])
        expected = len(notifier["expected_seqs"])
        if shown != expected:
            what = "missed" if shown < expected else "showed twice"
            yield Anomaly(
                "notifier",
                f"{notifier['name']} {what} changes: it notified {shown} changes, "
                f"{expected} followed events came after its start (seq {notifier['start_seq']})",
            )


def cpr_forms(cpr: str) -> tuple[str, str]:
    return cpr, f"{cpr[:6]}-{cpr[6:]}"


def _cprs(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    forms = {form: index for index, cpr in enumerate(evidence.cprs) for form in cpr_forms(cpr)}
    for name, text in sorted(evidence.logs.items()):
        hits = [index for form, index in forms.items() if form in text]
        if hits:
            yield Anomaly(
                "cpr",
                f"{len(hits)} of the workload's CPR numbers are in {name} "
                f"(CPR nos. {sorted(hits)[:5]} of the run's list)",
            )


def _dead_letters(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    for letter in evidence.dead_letters:
        command_id = letter.get("command_id")
        ids = [str(command_id)] if command_id else []
        if letter.get("source") != "rejected":
            yield Anomaly(
                "dead",
                f"a {letter.get('kind')} dead-lettered as {letter.get('source')} "
                f"({letter.get('code')})",
                ids,
            )
            continue
        command = commands.get(str(command_id))
        final = command.final if command else None
        if final is not None and final["ev"] == "answer":
            yield Anomaly(
                "dead",
                f"a {letter.get('kind')} was answered with a result but is a rejected dead letter",
                ids,
            )


def _stalls(evidence: Evidence, commands: dict[str, Command]) -> Iterable[Anomaly]:
    served = _served(evidence.history)
    for before, after in itertools.pairwise(served):
        if after - before > STALL_S:
            waiting = sorted(
                {
                    str(r["id"])
                    for r in evidence.history
                    if r["ev"] == "send" and before <= float(r["t"]) <= after
                }
            )
            yield Anomaly(
                "stall",
                f"no answer for {after - before:.1f} s (from t={before:.1f} to t={after:.1f})",
                waiting,
            )


# -- figures -------------------------------------------------------------------------------------


def _served(history: list[dict[str, Any]]) -> list[float]:
    """When clients got answers, from the first send on (service is owed from then)."""
    sends = [float(r["t"]) for r in history if r["ev"] == "send"]
    answers = [float(r["t"]) for r in history if r["ev"] in ("answer", "refused")]
    return sorted(answers + sends[:1] if sends else answers)


def longest_gap(served: list[float], start: float, end: float) -> float:
    """The longest time without any answer that overlaps ``[start, end]``."""
    longest = 0.0
    for before, after in itertools.pairwise(served):
        if after >= start and before <= end:
            longest = max(longest, after - before)
    return longest


def _during(
    history: list[dict[str, Any]], start: float, end: float, test: Callable[[dict[str, Any]], bool]
) -> int:
    return sum(1 for r in history if start <= float(r["t"]) <= end and test(r))


def figures(
    evidence: Evidence, commands: dict[str, Command], anomalies: list[Anomaly]
) -> dict[str, Any]:
    history = evidence.history
    writes = [c for c in commands.values() if c.write]
    finals = Counter((c.final["ev"] if c.final else "unanswered") for c in commands.values())
    refusals = Counter(
        str(c.final.get("code"))
        for c in commands.values()
        if c.final and c.final["ev"] == "refused"
    )
    served = _served(history)
    per_fault: dict[str, dict[str, Any]] = {}
    for fault in evidence.faults:
        name = FAULT_NAMES.get(fault["kind"], fault["kind"])
        start, end = float(fault["start"]), float(fault["end"]) + AFTERMATH_S
        gap = longest_gap(served, start, end)
        entry = per_fault.setdefault(
            name,
            {
                "injected": 0,
                "longest_gap_s": 0.0,
                "unavailable": 0,
                "resends": 0,
                "refused": Counter(),
            },
        )
        entry["injected"] += 1
        entry["longest_gap_s"] = max(entry["longest_gap_s"], round(gap, 2))
        entry["unavailable"] += _during(history, start, end, lambda r: r["ev"] == "unavailable")
        entry["resends"] += _during(
            history, start, end, lambda r: r["ev"] == "send" and int(r.get("attempt", 1)) > 1
        )
        for record in history:
            if record["ev"] == "refused" and start <= float(record["t"]) <= end:
                entry["refused"][str(record.get("code"))] += 1
    for entry in per_fault.values():
        entry["refused"] = dict(entry["refused"])
    return {
        "commands": len(commands),
        "writes": len(writes),
        "reads": len(commands) - len(writes),
        "sends": sum(len(c.sends) for c in commands.values()),
        "resends": sum(max(0, len(c.sends) - 1) for c in commands.values() if c.write),
        "kinds": dict(sorted(Counter(c.kind for c in commands.values()).items())),
        "outcomes": dict(finals),
        "refused_by_code": dict(refusals),
        "events": len(evidence.events),
        "faults": dict(Counter(FAULT_NAMES.get(f["kind"], f["kind"]) for f in evidence.faults)),
        "per_fault": per_fault,
        "anomalies": len(anomalies),
        "redis_failovers_not_injected": [
            f for f in evidence.redis_failovers if not f.get("injected")
        ],
        "checked": {
            "ledger rows": len(evidence.ledger),
            "orders": len(evidence.orders),
            "placements": len(evidence.placements),
            "placement log entries": len(evidence.placement_log),
            "stream entries": len(evidence.stream_seqs),
            "deleted from the stream by the nemesis": len(evidence.deleted_seqs),
            "headers lost with a Redis master": len(
                lost_in_failovers(
                    evidence,
                    set(int(e["seq"]) for e in evidence.events)
                    - set(evidence.stream_seqs)
                    - set(evidence.deleted_seqs),
                )
            ),
            "dead letters": dict(Counter(str(d.get("source")) for d in evidence.dead_letters)),
            "log files": len(evidence.logs),
            "log bytes": sum(len(text) for text in evidence.logs.values()),
            "CPRs looked for": len(evidence.cprs),
        },
        "notifiers": [
            {
                "name": n["name"],
                "start_seq": n.get("start_seq"),
                "notifications": len(n["notified"]),
                "changes_shown": sum(n["notified"]),
                "followed_events": len(n["expected_seqs"]),
            }
            for n in evidence.notifiers
        ],
        "overall_longest_gap_s": round(longest_gap(served, served[0], served[-1]), 2)
        if len(served) > 1
        else 0.0,
    }
