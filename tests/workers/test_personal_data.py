"""CPR numbers never leak: a whole scenario, then a grep of everything the system wrote.

Everything: the worker's log, every key and value left in Redis (queues, replies, the event
stream, dead messages), what other organisations were shown, errors, and dead letters.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import System, wait_until
from tests.factories import CPR_1, CPR_2, EMPLOYER_A, order_doc
from tests.workers.test_garbage import dramatiq_message, push_raw

pytestmark = pytest.mark.integration

KBH, AKASSE, AARHUS, EMPLOYER = (
    "jobcentre:101",
    "akasse:3f",
    "jobcentre:751",
    f"employer:{EMPLOYER_A}",
)
#: A CPR with a valid date that only ever appears in refused input.
REFUSED_CPR = "3102901234"


def redis_dump(client: redis.Redis) -> bytes:
    """Every key and value in Redis, whatever its type."""
    parts: list[bytes] = []
    for key in client.keys("*"):
        kind = client.type(key)
        parts.append(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"hash":
            parts += [k + b"=" + v for k, v in client.hgetall(key).items()]
        elif kind == b"set":
            parts += list(client.smembers(key))
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"stream":
            parts += [
                json.dumps({k.decode(): v.decode() for k, v in f.items()}).encode()
                for _, f in client.xrange(key)
            ]
    return b"\n".join(parts)


def test_no_cpr_in_anything_the_system_wrote(system: System, tmp_path: Path) -> None:
    shown: dict[str, list[str]] = {}

    def as_other(*args: str, expect: int = 0, stdin: str | None = None) -> dict[str, Any]:
        result = system.cli(*args, "--json", stdin=stdin)
        assert result.code == expect, result.out + result.err
        shown.setdefault(args[args.index("--as") + 1], []).append(result.out + result.err)
        document: dict[str, Any] = json.loads(result.out)
        return document

    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc(internal_comment=None)))
    order = system.json("order", "register", "--file", str(path), "--as", EMPLOYER)
    oid = str(order["id"])
    mine = system.json(
        "placement",
        "register",
        oid,
        "--cpr",
        "-",
        "--as",
        KBH,
        "--note",
        "god kandidat",
        stdin=CPR_1,
    )
    system.json("placement", "register", oid, "--cpr", "-", "--as", AKASSE, stdin=CPR_2)
    # Refusals: a duplicate person (someone else's CPR), a date that does not exist.
    as_other("placement", "register", oid, "--cpr", "-", "--as", AKASSE, stdin=CPR_1, expect=2)
    as_other(
        "placement", "register", oid, "--cpr", "-", "--as", AKASSE, stdin=REFUSED_CPR, expect=2
    )
    as_other("placement", "status", oid, str(mine["id"]), "hired", "--as", EMPLOYER)
    as_other("placement", "log", oid, "--as", AKASSE)
    as_other("placement", "log", oid, "--as", EMPLOYER)
    as_other("inbox", "--as", AKASSE, "--limit", "1000")
    as_other("inbox", "--as", EMPLOYER, "--limit", "1000")
    as_other("order", "changes", "--as", AARHUS, "--limit", "1000")
    as_other("audit", "person", "-", "--as", AARHUS, stdin=CPR_1)
    # A forged placement straight onto the queue, with a CPR inside.
    forged = {
        "schema_version": 1,
        "kind": "register_placement",
        "command_id": uuid.uuid4().hex,
        "principal": KBH,
        "correlation_id": "x",
        "sent_at": "2026-01-01T00:00:00Z",
        "payload": {"order_id": order["id"], "cpr": CPR_2},
        "key_id": "nope",
        "signature": "0" * 64,
    }
    push_raw(system, dramatiq_message("register_placement", [json.dumps(forged)]))
    wait_until(
        lambda: any(
            d["code"] == "forbidden"
            for d in system.json("dead", "list", "--limit", "100")["dead_letters"]
        ),
        30,
        "the forged command to be refused",
    )
    shown["ops"] = [system.cli("dead", "list", "--json", "--limit", "1000").out]

    owners = {CPR_1: KBH, CPR_2: AKASSE, REFUSED_CPR: None}
    for cpr, owner in owners.items():
        everything = {
            "worker log": system.worker_logs(),
            "redis": redis_dump(system.redis.client()),
            **{
                f"output to {who}": "\n".join(out).encode()
                for who, out in shown.items()
                if who != owner
            },
        }
        for where, data in everything.items():
            at = data.find(cpr.encode())
            assert at < 0, f"a CPR number in the {where}: {data[max(0, at - 300) : at + 50]!r}"


def test_an_access_request_through_the_cli_answers_each_asker_what_is_theirs(
    system: System, tmp_path: Path
) -> None:
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc()))
    oid = str(system.json("order", "register", "--file", str(path), "--as", KBH)["id"])
    cpr = "0202851234"
    system.json("placement", "register", oid, "--cpr", "-", "--as", AKASSE, stdin=cpr)
    asked = system.json("audit", "person", "-", "--as", AARHUS, stdin=cpr)
    assert asked == {"entries": [], "count": 0}
    whole = system.json("audit", "person", "-", "--as", "star", stdin=cpr)
    assert [(e["action"], e["organisation"]) for e in whole["entries"]] == [
        ("register", AKASSE),
        ("audit", AARHUS),
    ]
    refused = system.cli("order", "search", "--as", "star", "--json")
    assert refused.code == 3, refused.out + refused.err
    assert cpr not in refused.out + refused.err
