"""One client process of a nemesis run: sends every command kind as one organisation and
records every send and every answer.

Run as ``python -m tests.faults.workload --name N --principal P --seed S --until T
--history FILE --cprs FILE``, with ``JOBORDRE_REDIS_URL`` (the Sentinel URL) and
``JOBORDRE_HOME`` (where the organisation's key file is) in the environment.

Contract of the history (JSON lines, one per send and per outcome; ``t`` is
``time.monotonic()``, the same clock in every process of the machine, ``wall`` the epoch):

- ``{"ev": "send", "id", "kind", "write", "attempt", ...}`` before each send;
- then one of ``{"ev": "answer", "id", "result"}`` (the worker applied it: ``result`` is the
  command's result without personal data), ``{"ev": "refused", "id", "code", "field"}`` (a
  rule refused it), or ``{"ev": "unavailable", "id", "message"}`` (no answer in time, or the
  broker unreachable);
- a write command without an answer is sent again with the same id until it has one or
  the run's settle time is over (then ``{"ev": "abandoned", "id"}``); a read that got no
  answer is asked again with a new id, as the README tells a client to.

CPR numbers never go into the history: a placement's payload names its CPR by index
(``cpr_ref``); the CPRs used are written to ``--cprs`` so that the checker can look for
them in every log.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TextIO

from shared.commands import CommandKind
from shared.errors import JobordreError, Unavailable
from shared.settings import Settings
from tests.factories import EMPLOYER_A, EMPLOYER_B, order_doc
from workers.client import Client

#: How long one attempt waits for its reply before the command is sent again, in ms.
REPLY_WAIT_MS = 5_000
#: Result fields kept in the history (scalars that identify what was applied).
KEPT = ("id", "order_id", "version", "status", "title", "placement_id", "processing_by")
#: Where a placement's person goes next (the authority's path; employers report outcomes).
NEXT_PERSON = {"placed": ["interview", "withdrawn"], "interview": ["hired", "not_hired"]}
NEXT_PERSON_EMPLOYER = {"placed": ["interview"], "interview": ["hired", "not_hired"]}


def fingerprint(result: Any) -> dict[str, Any]:
    """What of a result the history keeps: identifying scalars, never personal data."""
    if not isinstance(result, dict):
        return {}
    kept = {key: result[key] for key in KEPT if key in result}
    if isinstance(kept.get("processing_by"), list):
        kept["processing_by"] = sorted(kept["processing_by"])
    return kept


def make_cpr(rng: random.Random) -> str:
    """A CPR number with a valid date in the 1900s (7th digit 0-3), no modulus 11."""
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(40, 99)
    return f"{day:02d}{month:02d}{year:02d}{rng.randint(0, 3)}{rng.randint(0, 999):03d}"


@dataclass
class Order:
    id: int
    version: int
    status: str
    employer: str
    mine: bool


@dataclass
class Placement:
    id: int
    order_id: int
    status: str


@dataclass
class Workload:
    name: str
    principal: str
    client: Client
    rng: random.Random
    out: TextIO
    cprs: TextIO
    until: float
    settle_until: float
    orders: dict[int, Order] = field(default_factory=dict)
    placements: dict[int, Placement] = field(default_factory=dict)
    cpr_used: set[str] = field(default_factory=set)
    cursor: str = "0"
    counter: int = 0

    @property
    def employer(self) -> bool:
        return self.principal.startswith("employer:")

    def record(self, **fields: Any) -> None:
        line = {"t": time.monotonic(), "wall": time.time(), "client": self.name}
        line.update(fields)
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()

    def new_id(self, kind: CommandKind) -> str:
        self.counter += 1
        return f"{self.name}-{self.counter:05d}-{kind.value}-{uuid.uuid4().hex[:6]}"

    # -- sending ------------------------------------------------------------------------

    def write(
        self, kind: CommandKind, payload: dict[str, Any], **about: Any
    ) -> dict[str, Any] | None:
        """Send a write command until it is answered (same id every time); its result, or
        None if a rule refused it or no answer came before the settle time ran out."""
        command_id = self.new_id(kind)
        attempt = 0
        while True:
            attempt += 1
            self.record(
                ev="send", id=command_id, kind=kind.value, write=True, attempt=attempt, **about
            )
            try:
                result = self.client.call(
                    kind, payload, command_id=command_id, timeout_ms=REPLY_WAIT_MS
                )
            except Unavailable as error:
                self.record(ev="unavailable", id=command_id, message=error.message[:200])
                if time.monotonic() > self.settle_until:
                    self.record(ev="abandoned", id=command_id)
                    return None
                time.sleep(0.3)
                continue
            except JobordreError as error:
                self.record(ev="refused", id=command_id, code=error.code, field=error.field)
                return None
            self.record(ev="answer", id=command_id, result=fingerprint(result))
            return result

    def read(self, kind: CommandKind, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Ask a query, a new id each try (a read is answered once per id), a few times."""
        for _ in range(3):
            command_id = self.new_id(kind)
            self.record(ev="send", id=command_id, kind=kind.value, write=False, attempt=1)
            try:
                result = self.client.call(
                    kind, payload, command_id=command_id, timeout_ms=REPLY_WAIT_MS
                )
            except Unavailable as error:
                self.record(ev="unavailable", id=command_id, message=error.message[:200])
                time.sleep(0.3)
                continue
            except JobordreError as error:
                self.record(ev="refused", id=command_id, code=error.code, field=error.field)
                return None
            self.record(ev="answer", id=command_id, result={})
            return result
        return None

    # -- what the state knows -------------------------------------------------------------

    def learn_order(self, result: dict[str, Any] | None, mine: bool = False) -> None:
        if not result or "id" not in result or "version" not in result:
            return
        employer = str((result.get("employer") or {}).get("cvr", ""))
        known = self.orders.get(int(result["id"]))
        self.orders[int(result["id"])] = Order(
            int(result["id"]),
            int(result["version"]),
            str(result["status"]),
            employer,
            mine or bool(known and known.mine),
        )

    def pick_order(self, *, processing: bool = False) -> Order | None:
        choices = [
            o
            for o in self.orders.values()
            if (not processing or o.status == "processing")
            and (not self.employer or o.mine)
            and not o.status.startswith("closed")
        ]
        return self.rng.choice(choices) if choices else None

    # -- the operations -------------------------------------------------------------------

    def register_order(self) -> None:
        employer = EMPLOYER_A if self.employer else self.rng.choice((EMPLOYER_A, EMPLOYER_B))
        deadline = (date.today() + timedelta(days=self.rng.randint(10, 60))).isoformat()
        self.counter += 0
        title = f"Nemesis {self.name} {len(self.orders) + 1:04d}"
        document = order_doc(
            title=title,
            employer={"cvr": employer, "p_number": "1003388419"},
            placement_deadline=deadline,
        )
        if self.employer:
            document.pop("internal_comment", None)
        self.learn_order(
            self.write(CommandKind.REGISTER_ORDER, {"order": document}, title=title), mine=True
        )

    def refresh(self, order: Order) -> None:
        self.learn_order(self.read(CommandKind.GET_ORDER, {"order_id": order.id}))

    def update_order(self, order: Order) -> None:
        patch = {"positions": self.rng.randint(1, 9)}
        result = self.write(
            CommandKind.UPDATE_ORDER,
            {"order_id": order.id, "expected_version": order.version, "patch": patch},
            order_id=order.id,
            expected_version=order.version,
        )
        self.learn_order(result) if result else self.refresh(order)

    def change_status(self, order: Order) -> None:
        if order.status == "processing":
            status = "closed_filled" if self.rng.random() < 0.08 else "inactivated"
        elif order.status == "inactivated":
            status = "processing"
        else:
            return
        result = self.write(
            CommandKind.CHANGE_ORDER_STATUS,
            {"order_id": order.id, "status": status, "expected_version": order.version},
            order_id=order.id,
            expected_version=order.version,
        )
        self.learn_order(result) if result else self.refresh(order)

    def take_or_release(self, order: Order) -> None:
        kind = CommandKind.TAKE_ORDER if self.rng.random() < 0.6 else CommandKind.RELEASE_ORDER
        result = self.write(kind, {"order_id": order.id}, order_id=order.id)
        self.learn_order(result) if result else self.refresh(order)

    def place(self, order: Order) -> None:
        cpr = make_cpr(self.rng)
        while cpr in self.cpr_used:
            cpr = make_cpr(self.rng)
        self.cpr_used.add(cpr)
        self.cprs.write(cpr + "\n")
        self.cprs.flush()
        result = self.write(
            CommandKind.REGISTER_PLACEMENT,
            {"order_id": order.id, "cpr": cpr, "referral": self.rng.random() < 0.5},
            order_id=order.id,
            cpr_ref=len(self.cpr_used),
        )
        if result and "id" in result:
            self.placements[int(result["id"])] = Placement(int(result["id"]), order.id, "placed")
        elif not result:
            self.refresh(order)

    def person_status(self) -> None:
        paths = NEXT_PERSON_EMPLOYER if self.employer else NEXT_PERSON
        open_ = [p for p in self.placements.values() if p.status in paths]
        if not open_:
            return
        placement = self.rng.choice(open_)
        status = self.rng.choice(paths[placement.status])
        result = self.write(
            CommandKind.CHANGE_PLACEMENT_STATUS,
            {"order_id": placement.order_id, "placement_id": placement.id, "status": status},
            order_id=placement.order_id,
            placement_id=placement.id,
        )
        if result:
            placement.status = str(result.get("status", status))
        else:
            self.learn_log(placement.order_id)

    def learn_log(self, order_id: int) -> None:
        """Placements of an order as its log shows them (an employer learns ids here)."""
        result = self.read(CommandKind.PLACEMENT_LOG, {"order_id": order_id})
        for row in (result or {}).get("placements", []):
            if isinstance(row, dict) and "id" in row and "status" in row:
                mine = not self.employer and row.get("placed_by") == self.principal
                if mine or self.employer:
                    self.placements[int(row["id"])] = Placement(
                        int(row["id"]), order_id, str(row["status"])
                    )

    def search(self) -> None:
        payload: dict[str, Any] = {"limit": 20}
        if self.rng.random() < 0.5:
            payload["text"] = "Nemesis"
        if self.employer:
            payload["employer"] = EMPLOYER_A
        result = self.read(CommandKind.SEARCH_ORDERS, payload)
        for found in (result or {}).get("orders", []):
            if isinstance(found, dict) and int(found.get("id", 0)) not in self.orders:
                self.learn_order(found)

    def inbox(self) -> None:
        result = self.read(CommandKind.INBOX, {"since": self.cursor, "limit": 50})
        if result and result.get("cursor"):
            self.cursor = str(result["cursor"])

    def follow(self, order: Order) -> None:
        caseworker = f"cw-{self.name}"
        kind = CommandKind.FOLLOW if self.rng.random() < 0.7 else CommandKind.UNFOLLOW
        self.write(kind, {"caseworker": caseworker, "order_id": order.id}, order_id=order.id)
        if self.rng.random() < 0.3:
            self.read(CommandKind.FOLLOWING, {"caseworker": caseworker})

    def step(self) -> None:
        if len(self.orders) < 3 or self.rng.random() < 0.08:
            self.register_order()
            return
        roll = self.rng.random()
        order = self.pick_order()
        if order is None:
            self.register_order()
        elif roll < 0.12:
            self.update_order(order)
        elif roll < 0.24:
            self.change_status(order)
        elif roll < 0.32 and not self.employer:
            self.take_or_release(order)
        elif roll < 0.50 and not self.employer:
            target = self.pick_order(processing=True)
            if target is not None:
                self.place(target)
        elif roll < 0.64:
            if self.employer and self.rng.random() < 0.5:
                self.learn_log(order.id)
            self.person_status()
        elif roll < 0.72:
            self.search()
        elif roll < 0.78:
            self.refresh(order)
        elif roll < 0.84:
            self.learn_log(order.id)
        elif roll < 0.92:
            self.inbox()
        elif not self.employer:
            self.follow(order)
        else:
            self.refresh(order)

    def run(self, pause_s: tuple[float, float]) -> None:
        while time.time() < self.until:
            self.step()
            time.sleep(self.rng.uniform(*pause_s))
        self.record(ev="done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--principal", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--until", type=float, required=True, help="epoch seconds")
    parser.add_argument("--settle-s", type=float, default=150.0)
    parser.add_argument("--pause-ms", type=int, nargs=2, default=(150, 450))
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--cprs", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = Settings()
    client = Client(settings, args.principal)
    settle_until = time.monotonic() + (args.until - time.time()) + args.settle_s
    with args.history.open("a") as out, args.cprs.open("a") as cprs:
        load = Workload(
            args.name,
            args.principal,
            client,
            random.Random(args.seed),
            out,
            cprs,
            args.until,
            settle_until,
        )
        try:
            load.run((args.pause_ms[0] / 1000, args.pause_ms[1] / 1000))
        finally:
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
