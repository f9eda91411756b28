"""A nemesis run: start the whole system on real parts, load it from several client
processes, inject faults on a seeded schedule while it runs, then check the history.

``python -m tests.faults.run --minutes N [--seed S] [--report FILE] [--keep DIR]`` prints
the report, ending in ``anomalies: N``, and exits 0 only when N is 0. ``scripts/nemesis``
sets the machine up first. What runs (see ``tests/faults/parts.py``): two worker hosts, a
Redis master, replica and three sentinels (everything reaches Redis through the Sentinel
URL), a PostgreSQL primary with a synchronous standby (reached through a multi-host URL
with ``target_session_attrs=read-write``), one terminal notifier per organisation that
follows, and three client processes (``tests/faults/workload.py``).

The faults (:data:`KINDS`): a worker host SIGKILLed (restarted later); a worker SIGSTOPped
past the heartbeat timeout and SIGCONTed once its messages were requeued (the zombie); a
host's link cut for 20 s; the Redis master SIGKILLed (Sentinel promotes the replica; the
old master comes back as a replica); the PostgreSQL primary SIGKILLed, the standby
promoted with ``pg_ctl promote`` and a new standby rebuilt with ``pg_basebackup``; a host's
home filled (a small tmpfs); the event stream shortened on Redis (its newest headers
deleted, as a Redis restarted from an older file has them). Every kind runs once, in a
seeded order, then kinds are drawn at random until the time is up. One fault at a time,
so one worker host always runs.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from shared.commands import CommandKind
from shared.events import EventHeader, parse_entry, stream_key
from shared.settings import Settings
from tests.factories import EMPLOYER_A, EMPLOYER_B
from tests.faults import checker
from tests.faults.parts import (
    WORKER_ENV,
    Host,
    Network,
    Notifier,
    PgPair,
    RedisSet,
    base_env,
    make_network,
    start_pg_pair,
    start_redis_set,
    wait_for,
)

#: The organisations the clients act as.
CLIENTS = (("jc", "jobcentre:101"), ("ak", "akasse:3f"), ("em", f"employer:{EMPLOYER_A}"))
#: One notifier per following organisation: (principal, caseworker, followed employer).
NOTIFIERS = (("jobcentre:101", "nf101", EMPLOYER_A), ("akasse:3f", "nf3f", EMPLOYER_B))
#: The fault kinds, each injected at least once.
KINDS = (
    "host_kill",
    "zombie",
    "partition",
    "redis_master",
    "pg_failover",
    "fill_home",
    "short_stream",
)
#: Seconds of load before the first fault, and without faults at the end.
WARMUP_S = 10.0
QUIET_END_S = 15.0
#: How long a cut link stays cut.
PARTITION_S = 20.0
#: Headers the stream fault deletes.
STREAM_CUT = 5
HEARTBEAT_S = int(WORKER_ENV["JOBORDRE_HEARTBEAT_TIMEOUT_MS"]) / 1000
MAINTENANCE_S = int(WORKER_ENV["JOBORDRE_MAINTENANCE_INTERVAL_MS"]) / 1000


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    dir: Path
    seed: int
    minutes: float
    net: Network
    redis: RedisSet | None = None
    pg: PgPair | None = None
    hosts: list[Host] = field(default_factory=list)
    notifiers: list[Notifier] = field(default_factory=list)
    clients: list[subprocess.Popen[bytes]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    deleted_seqs: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    harness_ids: set[str] = field(default_factory=set)

    @property
    def clients_home(self) -> Path:
        return self.dir / "clients"

    def settings(self) -> Settings:
        assert self.redis is not None
        return Settings(home=self.clients_home, redis_url=self.redis.url, reply_timeout_ms=10_000)

    # -- setup ----------------------------------------------------------------------------

    def start(self) -> None:
        service = self.net.service
        say(f"network: {self.net.mode} ({self.net.note})")
        self.redis = start_redis_set(self.dir / "redis", service)
        say(f"redis: {self.redis.url}")
        networks = [h.network for h in self.net.hosts if h.network]
        self.pg = start_pg_pair(self.dir / "pg", service, networks)
        say(f"postgres: {self.pg.url} ({self.pg.sync_state()})")
        from workers.client.credentials import signing_key

        operator = Settings(home=self.clients_home, database_url=self.pg.url)
        for principal in {p for _, p in CLIENTS} | {p for p, _, _ in NOTIFIERS}:
            signing_key(operator, principal)
        env = {
            **base_env(),
            **WORKER_ENV,
            "JOBORDRE_REDIS_URL": self.redis.url,
            "JOBORDRE_DATABASE_URL": self.pg.url,
        }
        for link in self.net.hosts:
            host = Host(link, self.dir / link.name, env)
            host.prepare(tmpfs_mb=8)
            host.start()
            self.hosts.append(host)
        for host in self.hosts:
            wait_for(host.started, 60, f"the worker on {host.link.name}")
        tmpfs = all(h.tmpfs for h in self.hosts)
        self.notes.append(
            "homes: 8 MB tmpfs each" if tmpfs else "homes: plain folders (mount failed)"
        )
        self._follow()
        notifier_env = {
            **base_env(),
            "JOBORDRE_REDIS_URL": self.redis.url,
            "JOBORDRE_KEY_DIR": str(self.clients_home / "keys"),
            "JOBORDRE_NOTIFIER_QUIET_MS": "100",
            "JOBORDRE_NOTIFIER_BURST_MS": "1000",
            "JOBORDRE_NOTIFIER_FOLLOWS_REFRESH_MS": "1000",
            "JOBORDRE_NOTIFIER_RECONNECT_MAX_MS": "1000",
        }
        for principal, caseworker, _ in NOTIFIERS:
            notifier = Notifier(
                principal, caseworker, self.dir / f"notifier-{caseworker}", notifier_env
            )
            notifier.start()
            self.notifiers.append(notifier)
        for notifier in self.notifiers:
            wait_for(
                lambda n=notifier: b"watching for changes" in n.err.read_bytes(),
                60,
                f"the notifier {notifier.caseworker}",
            )

    def _follow(self) -> None:
        from workers.client import Client

        for principal, caseworker, employer in NOTIFIERS:
            client = Client(self.settings(), principal)
            try:
                command_id = f"harness-follow-{caseworker}"
                client.call(
                    CommandKind.FOLLOW,
                    {"caseworker": caseworker, "employer": employer},
                    command_id=command_id,
                )
                self.harness_ids.add(command_id)
            finally:
                client.close()

    def start_clients(self, until: float) -> None:
        assert self.redis is not None
        env = {
            **base_env(),
            "JOBORDRE_REDIS_URL": self.redis.url,
            "JOBORDRE_HOME": str(self.clients_home),
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
        for number, (name, principal) in enumerate(CLIENTS):
            argv = [
                sys.executable,
                "-m",
                "tests.faults.workload",
                "--name",
                name,
                "--principal",
                principal,
                "--seed",
                str(self.seed * 100 + number),
                "--until",
                str(until),
                "--history",
                str(self.dir / f"history-{name}.jsonl"),
                "--cprs",
                str(self.dir / f"cprs-{name}.txt"),
            ]
            with (self.dir / f"client-{name}.log").open("ab") as log:
                self.clients.append(
                    subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
                )

    # -- the nemesis ----------------------------------------------------------------------

    def inject(self, kind: str, rng: random.Random) -> None:
        host = rng.choice(self.hosts)
        start = time.monotonic()
        detail = getattr(self, f"_fault_{kind}")(host)
        end = time.monotonic()
        wall = time.time() - (time.monotonic() - start)
        self.faults.append(
            {"kind": kind, "start": start, "end": end, "wall": wall, "detail": detail}
        )
        say(f"fault {kind}: {detail} ({end - start:.1f} s)")

    def _worker_ids(self, host: Host) -> list[str]:
        """The ids the host's worker processes registered under."""
        assert self.redis is not None
        from workers.ops.queues import broker_snapshot

        pids = host.pids()
        client = self.redis.client()
        try:
            workers = broker_snapshot(client, self.settings())["workers"]
        finally:
            client.close()
        return [w["id"] for w in workers if w["pid"] in pids]

    def _held(self, worker_ids: list[str]) -> dict[str, set[bytes]]:
        """The messages these workers fetched and have not acked, per queue."""
        assert self.redis is not None
        from workers.ops.recovery import acks_key, all_queues
        from workers.transport.broker import COMMANDS_QUEUE, QUERIES_QUEUE

        client = self.redis.client()
        try:
            held: dict[str, set[bytes]] = {}
            for queue in all_queues((COMMANDS_QUEUE, QUERIES_QUEUE)):
                for worker_id in worker_ids:
                    members: Any = client.smembers(acks_key("dramatiq", worker_id, queue))
                    held.setdefault(queue, set()).update(members)
            return held
        finally:
            client.close()

    def _holding(self, host: Host) -> list[str]:
        """The host's worker ids, once they hold a message (or after 10 s, idle)."""
        ids = self._worker_ids(host)
        deadline = time.monotonic() + 10
        while not any(self._held(ids).values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        return ids

    def _done_elsewhere(self, held: dict[str, set[bytes]], timeout_s: float) -> float | None:
        """Seconds until every held message was acked by someone (its body gone)."""
        assert self.redis is not None
        started = time.monotonic()

        def done() -> bool:
            client = self.redis.client()  # type: ignore[union-attr]
            try:
                return not any(
                    client.hexists(f"dramatiq:{queue}.msgs", message)
                    for queue, messages in held.items()
                    for message in messages
                )
            finally:
                client.close()

        try:
            wait_for(done, timeout_s, "the held messages to be done elsewhere")
        except TimeoutError:
            return None
        return time.monotonic() - started

    def _fault_host_kill(self, host: Host) -> str:
        ids = self._holding(host)
        host.kill()
        held = self._held(ids)
        # Its messages come back after the heartbeat timeout and are done by the other host.
        done = self._done_elsewhere(held, 60)
        count = sum(map(len, held.values()))
        time.sleep(max(0.0, HEARTBEAT_S + MAINTENANCE_S - (done or 0.0)))
        host.start()
        wait_for(host.started, 60, f"{host.link.name} to restart")
        after = "never done" if done is None else f"done elsewhere {done:.1f} s after the kill"
        return (
            f"SIGKILL {host.link.name}'s process group holding {count} messages ({after}); "
            "restarted"
        )

    def _in_transaction(self, host: Host) -> bool:
        """Whether one of the host's PostgreSQL sessions is inside a transaction."""
        if host.link.address is None:
            return False
        rows = self._sql(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE xact_start IS NOT NULL"
            f" AND client_addr = '{host.link.address}'"
        )
        return bool(rows[0][0])

    def _fault_zombie(self, host: Host) -> str:
        ids = self._holding(host)
        # Stopped mid-transaction if it can be caught in one within a few seconds: the
        # case where a frozen worker holds the store's locks.
        deadline = time.monotonic() + 5
        while not self._in_transaction(host) and time.monotonic() < deadline:
            pass
        host.signal(signal.SIGSTOP)
        mid = "mid-transaction" if self._in_transaction(host) else "between transactions"
        held = self._held(ids)
        time.sleep(HEARTBEAT_S)
        done = self._done_elsewhere(held, 60)
        stopped = HEARTBEAT_S + (done or 60.0)
        time.sleep(2 * MAINTENANCE_S)
        host.signal(signal.SIGCONT)
        count = sum(map(len, held.values()))
        after = "never done" if done is None else "requeued and done elsewhere"
        return (
            f"SIGSTOP {host.link.name} {mid}, holding {count} messages ({after}), "
            f"SIGCONT after {stopped + 2 * MAINTENANCE_S:.0f} s"
        )

    def _fault_partition(self, host: Host) -> str:
        if not self.net.cut(host.link):
            time.sleep(1)
            return "not injected: hosts share loopback (no namespaces)"
        time.sleep(PARTITION_S)
        self.net.restore(host.link)
        return f"{host.link.name}'s link down for {PARTITION_S:.0f} s"

    def _fault_redis_master(self, host: Host) -> str:
        assert self.redis is not None
        old = self.redis.master_port()
        assert old is not None
        self.redis.servers[old].kill()
        new = wait_for(
            lambda: (port := self.redis.master_port()) not in (None, old) and port,
            60,
            "Sentinel to promote the replica",
        )
        time.monotonic()
        time.sleep(3)
        self.redis.servers[old].start()
        wait_for(self.redis.ready, 90, "the old master to rejoin as a replica")
        return f"SIGKILL master :{old}; :{new} promoted; old master rejoined as replica"

    def _fault_pg_failover(self, host: Host) -> str:
        assert self.pg is not None
        dead = self.pg.kill_primary()
        killed = time.monotonic()
        new = self.pg.promote()
        promoted = time.monotonic() - killed
        time.sleep(5)
        self.pg.rebuild_standby()
        return (
            f"SIGKILL primary :{dead.port}; pg_ctl promote :{new.port} {promoted:.1f} s later; "
            f"standby rebuilt on :{dead.port} ({self.pg.sync_state()})"
        )

    def _fault_fill_home(self, host: Host) -> str:
        filler = host.home / "filler"
        if not host.tmpfs:
            time.sleep(1)
            return "not injected: no tmpfs home"
        stat = os.statvfs(host.home)
        free = stat.f_bavail * stat.f_frsize
        with filler.open("wb") as file, contextlib.suppress(OSError):
            file.write(b"\0" * free)
        time.sleep(15)
        filler.unlink()
        return f"{host.link.name}'s home (tmpfs) full for 15 s ({free // 1024} KiB written)"

    def _fault_short_stream(self, host: Host) -> str:
        assert self.redis is not None
        client = self.redis.client()
        try:
            key = stream_key(Settings().redis_prefix)
            newest: Any = client.xrevrange(key, count=STREAM_CUT)
            seqs = []
            for entry_id, fields in newest:
                header = parse_entry(fields)
                if header is not None:
                    seqs.append(header.seq)
                client.xdel(key, entry_id)
            self.deleted_seqs.extend(seqs)
        finally:
            client.close()
        return f"deleted the stream's {len(seqs)} newest headers (seqs {sorted(seqs)})"

    def heal(self) -> None:
        for host in self.hosts:
            self.net.restore(host.link)
            if host.alive():
                host.signal(signal.SIGCONT)
            else:
                host.start()
            (host.home / "filler").unlink(missing_ok=True)

    # -- the end --------------------------------------------------------------------------

    def settle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for process in self.clients:
            process.wait(max(1.0, deadline - time.monotonic()))
        settings = self.settings()
        from workers.ops.queues import broker_snapshot

        def drained() -> bool:
            assert self.redis is not None
            client = self.redis.client()
            try:
                snapshot = broker_snapshot(client, settings)
            finally:
                client.close()
            return all(
                q["ready"] == q["in_flight"] == q["delayed"] == 0 for q in snapshot["queues"]
            )

        try:
            wait_for(drained, 120, "the queues to drain")
        except TimeoutError as error:
            self.notes.append(str(error))
        try:
            wait_for(self._relayed, 60, "the relay to push every event")
        except TimeoutError as error:
            self.notes.append(str(error))
        # Notifiers: show what they hold (quiet and burst are about a second).
        time.sleep(5)

    def _sql(self, statement: str) -> list[tuple[Any, ...]]:
        assert self.pg is not None
        with psycopg.connect(self.pg.url) as conn:
            return list(conn.execute(statement.encode()).fetchall())  # type: ignore[call-overload]

    def _relayed(self) -> bool:
        return self._sql(
            "SELECT COUNT(*) FROM events WHERE seq > (SELECT pushed_seq FROM relay_mark)"
        ) == [(0,)]

    def evidence(self) -> checker.Evidence:
        history: list[dict[str, Any]] = []
        for path in sorted(self.dir.glob("history-*.jsonl")):
            history.extend(json.loads(line) for line in path.read_text().splitlines() if line)
        ledger = {
            row[0]: {"kind": row[1], "principal": row[2], "outcome": row[3], "reply": row[4]}
            for row in self._sql("SELECT command_id, kind, principal, outcome, reply FROM commands")
        }
        audience: dict[int, list[str]] = {}
        for organisation, seq in self._sql("SELECT organisation, seq FROM event_audience"):
            audience.setdefault(int(seq), []).append(str(organisation))
        events = []
        headers: list[EventHeader] = []
        for seq, kind, order_id, command_id, header, at in self._sql(
            "SELECT seq, type, order_id, command_id, header, at FROM events ORDER BY seq"
        ):
            parsed = json.loads(header)
            events.append(
                {
                    "seq": int(seq),
                    "type": kind,
                    "order_id": int(order_id),
                    "command_id": command_id,
                    "version": parsed.get("version"),
                    "at": datetime.fromisoformat(str(at)).timestamp(),
                }
            )
            parsed.setdefault("audience", audience.get(int(seq), []))
            headers.append(EventHeader.model_validate(parsed))
        orders = {
            int(row[0]): {"version": row[1], "status": row[2], "title": row[3]}
            for row in self._sql("SELECT id, version, status, title FROM orders")
        }
        placements = {
            int(row[0]): {"status": row[1], "order_id": row[2]}
            for row in self._sql("SELECT id, status, order_id FROM placements")
        }
        log = [
            {"id": row[0], "placement_id": row[1], "from": row[2], "to": row[3]}
            for row in self._sql(
                "SELECT id, placement_id, from_status, to_status FROM placement_log"
            )
        ]
        dead = [
            {"source": row[0], "code": row[1], "command_id": row[2], "kind": row[3]}
            for row in self._sql("SELECT source, code, command_id, kind FROM dead_letters")
        ]
        assert self.redis is not None
        client = self.redis.client()
        try:
            entries: Any = client.xrange(stream_key(Settings().redis_prefix))
            stream = [h.seq for _, fields in entries if (h := parse_entry(fields)) is not None]
        finally:
            client.close()
        cprs = sorted(
            {line for p in self.dir.glob("cprs-*.txt") for line in p.read_text().split() if line}
        )
        return checker.Evidence(
            history=history,
            faults=self.faults,
            ledger=ledger,
            events=events,
            orders=orders,
            placements=placements,
            placement_log=log,
            dead_letters=dead,
            stream_seqs=stream,
            deleted_seqs=self.deleted_seqs,
            notifiers=[self._notifier_evidence(n, headers) for n in self.notifiers],
            logs=self._logs(),
            cprs=cprs,
            harness_ids=self.harness_ids,
            redis_failovers=self._redis_failovers(),
        )

    def _redis_failovers(self) -> list[dict[str, Any]]:
        """Every change of Redis master the sentinels logged, injected or not."""
        lines: list[tuple[float, str]] = []
        for path in (self.dir / "redis").glob("sentinel-*/sentinel.log"):
            for line in path.read_text(errors="replace").splitlines():
                parts = line.split(" ", 6)
                if len(parts) < 7 or not parts[6].startswith("+"):
                    continue
                stamp = datetime.strptime(" ".join(parts[1:5]), "%d %b %Y %H:%M:%S.%f")
                lines.append((stamp.timestamp(), parts[6]))
        lines.sort()
        failovers: list[dict[str, Any]] = []
        for when, text in lines:
            words = text.split()
            if words[0] != "+switch-master" or any(
                f["old"] == words[3] and abs(f["switch"] - when) < 10 for f in failovers
            ):
                continue
            old, new = words[3], words[5]
            downs = [
                t
                for t, x in lines
                if x.startswith("+sdown master") and x.split()[-1] == old and when - 30 <= t <= when
            ]
            converted = [
                t
                for t, x in lines
                if x.startswith("+convert-to-slave") and f":{old} " in x and when <= t <= when + 60
            ]
            start = min(downs, default=when) - 1.0
            end = min(converted, default=when) + 1.0
            injected = any(
                f["kind"] == "redis_master" and start - 5 <= f["wall"] <= end for f in self.faults
            )
            failovers.append(
                {
                    "start": start,
                    "end": end,
                    "switch": when,
                    "old": old,
                    "new": new,
                    "injected": injected,
                }
            )
        return failovers

    def _notifier_evidence(self, notifier: Notifier, headers: list[EventHeader]) -> dict[str, Any]:
        from notifier.follow import Follows

        err = notifier.err.read_text(errors="replace")
        start = None
        notified: list[int] = []
        for line in err.splitlines():
            if "caught up to event" in line and start is None:
                start = int(line.rsplit("event", 1)[1].split(";")[0].strip())
            if "notified" in line and "change(s)" in line:
                notified.append(int(line.split("notified", 1)[1].split()[0]))
        employer = next(e for p, c, e in NOTIFIERS if c == notifier.caseworker)
        follows = Follows(notifier.principal, employers={employer})
        expected = [
            h.seq for h in headers if start is not None and h.seq > start and follows.matches(h)
        ]
        return {
            "name": f"notifier {notifier.principal}/{notifier.caseworker}",
            "start_seq": start,
            "notified": notified,
            "expected_seqs": expected,
        }

    def _logs(self) -> dict[str, str]:
        found: dict[str, str] = {}
        patterns = ("*.log", "*/*.log", "*/*/*.log", "notifier-*/notifier.*", "pg/*.log")
        for pattern in patterns:
            for path in self.dir.glob(pattern):
                if path.is_file():
                    found[str(path.relative_to(self.dir))] = path.read_text(errors="replace")
        return found

    def close(self) -> None:
        """Stop everything started, each part even if another fails to stop."""
        steps: list[Callable[[], None]] = [
            *(functools.partial(_end, process) for process in self.clients),
            *(notifier.stop for notifier in self.notifiers),
            *(host.close for host in self.hosts),
        ]
        if self.pg is not None:
            steps.append(self.pg.close)
        if self.redis is not None:
            steps.append(self.redis.close)
        steps.append(self.net.close)
        for step in steps:
            try:
                step()
            except Exception as error:  # the next part must still be stopped
                say(f"cleanup: {type(error).__name__}: {error}")


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


def nemesis(run: Run, rng: random.Random, until: float) -> None:
    """Every kind once in a seeded order, then random kinds, until ``until`` (monotonic)."""
    time.sleep(WARMUP_S)
    first = list(KINDS)
    rng.shuffle(first)
    while time.monotonic() < until - QUIET_END_S:
        kind = first.pop(0) if first else rng.choice(KINDS)
        run.inject(kind, rng)
        left = until - QUIET_END_S - time.monotonic()
        pause = left / (len(first) + 1) * 0.3 if first else rng.uniform(3, 10)
        time.sleep(max(2.0, min(pause, max(0.0, left))))
    if first:
        run.notes.append(f"not reached in the time: {', '.join(first)}")


def report(run: Run, verdict: checker.Verdict, minutes: float) -> str:
    f = verdict.figures
    lines = [
        f"nemesis run: {minutes:g} minutes, seed {run.seed}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"network: {run.net.mode} ({run.net.note})",
        *(f"note: {note}" for note in run.notes),
        f"commands sent: {f['commands']} ({f['writes']} writes, {f['reads']} reads; "
        f"{f['sends']} sends, {f['resends']} write resends with the same id)",
        f"by kind: {json.dumps(f['kinds'])}",
        f"outcomes: {json.dumps(f['outcomes'])}; "
        f"refused by code: {json.dumps(f['refused_by_code'])}",
        f"events: {f['events']}",
        *(
            f"Redis failover NOT injected (Sentinel, on a live master): :{x['old']} -> "
            f":{x['new']} at {time.strftime('%H:%M:%S', time.gmtime(x['switch']))}; the old "
            f"master took writes for {x['end'] - x['switch'] - 1:.1f} s after the switch"
            for x in f["redis_failovers_not_injected"]
        ),
        f"checked: {json.dumps(f['checked'])}",
        *(
            f"{n['name']}: from seq {n['start_seq']}, {n['notifications']} notifications "
            f"showing {n['changes_shown']} changes; {n['followed_events']} followed events"
            for n in f["notifiers"]
        ),
        f"faults injected: {json.dumps(f['faults'])}",
        "per fault kind: longest time without any answer (within the fault and"
        f" {checker.AFTERMATH_S:g} s after),"
        " what clients saw:",
    ]
    for name, entry in sorted(f["per_fault"].items()):
        lines.append(
            f"  {name}: {entry['injected']}x, longest gap {entry['longest_gap_s']:.2f} s; "
            f"{entry['unavailable']} unavailable, {entry['resends']} resends, "
            f"refused {json.dumps(entry['refused'])}"
        )
    lines.append("fault log:")
    t0 = run.faults[0]["start"] if run.faults else 0.0
    for fault in run.faults:
        lines.append(f"  +{fault['start'] - t0:6.1f} s {fault['kind']}: {fault['detail']}")
    lines.append(f"overall longest gap: {f['overall_longest_gap_s']:.2f} s")
    for anomaly in verdict.anomalies:
        lines.append(f"ANOMALY {anomaly}")
    lines.append(f"anomalies: {len(verdict.anomalies)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nemesis")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run's files here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds into the cleanup below

    signal.signal(signal.SIGTERM, stop)
    rng = random.Random(seed)
    directory = Path(tempfile.mkdtemp(prefix="jobordre-nemesis-"))
    os.chmod(directory, 0o755)  # the postgres user reaches its folder through it
    run = Run(directory, seed, args.minutes, make_network(("host-a", "host-b")))
    verdict = None
    try:
        run.start()
        duration = args.minutes * 60
        until_wall = time.time() + duration
        until = time.monotonic() + duration
        run.start_clients(until_wall)
        say(f"load running for {duration:.0f} s, seed {seed}")
        nemesis(run, rng, until)
        run.heal()
        run.settle(240)
        evidence = run.evidence()
        (directory / "evidence.json").write_text(
            json.dumps(dataclasses.asdict(evidence), default=sorted)
        )
        verdict = checker.check(evidence)
        text = report(run, verdict, args.minutes)
    except BaseException as error:
        text = f"nemesis run failed: {type(error).__name__}: {error}\nanomalies: 1"
        import traceback

        traceback.print_exc()
    finally:
        if args.keep is not None:  # before the homes' tmpfs go
            try:
                shutil.copytree(
                    directory,
                    args.keep,
                    dirs_exist_ok=True,
                    symlinks=True,
                    ignore=shutil.ignore_patterns(".s.PGSQL.*"),
                )
            except (OSError, shutil.Error) as error:
                say(f"could not keep every file: {error}")
        run.close()
        shutil.rmtree(directory, ignore_errors=True)
    print(text, flush=True)
    if args.report is not None:
        args.report.write_text(text + "\n")
    return 0 if verdict is not None and not verdict.anomalies else 1


if __name__ == "__main__":
    sys.exit(main())
