"""Each organisation alone on the broker: Redis 7 ACL users from ``jobordre broker acl``.

A real ``redis-server`` 7 started with the ACL file the command writes, a real worker
process running as the workers' user (``relay_shared_stream`` off, as an ACL deployment
runs it) and a scenario of orders, placements with CPR numbers and notes, searches and
follows. Then each organisation's user tries every key it must not touch and gets
``NOPERM``, does what it must be able to do, and a dump of every key holds none of the
scenario's personal data (docs/security-broker.md, the threat model).
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.commands import CommandKind
from shared.events import AUTHORITIES, audience_stream_key
from tests.conftest import JOBORDRE, RedisServer, System, free_port, start_redis
from tests.factories import CPR_1, order_doc
from workers.client import Client

pytestmark = pytest.mark.integration

KBH, AKASSE, EMPLOYER = "jobcentre:101", "akasse:3f", "employer:25313763"
AARHUS = "jobcentre:751"
ORGANISATIONS = (KBH, AKASSE, EMPLOYER, AARHUS)
PREFIX = "jobordre"
NOTE = "Borgeren har ønsket deltid pga. helbred"
SECOND_CPR = "0202851234"
THIRD_CPR = "0303921234"


def redis_major() -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server (7 or newer)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"v=(\d+)\.", version.stdout)
    assert found, version.stdout
    return int(found.group(1))


@dataclass
class AclBroker:
    """A redis-server on the ACL file, and each user's password."""

    server: RedisServer
    passwords: dict[str, str]

    def url(self, user: str) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.server.port}/0"

    def as_user(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user))


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    if redis_major() < 7:
        pytest.fail("these tests need redis-server 7 or newer (read/write key permissions)")
    folder = tmp_path_factory.mktemp("acl")
    orgs = [part for org in ORGANISATIONS for part in ("--org", org)]
    made = subprocess.run(
        [str(JOBORDRE), "broker", "acl", "--only", *orgs, "--secrets", str(folder), "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={"JOBORDRE_HOME": str(folder), "PATH": "/usr/bin:/bin"},
    )
    assert made.returncode == 0, made.stdout + made.stderr
    document = json.loads(made.stdout)
    passwords = {
        user["user"]: Path(user["password_file"]).read_text().strip() for user in document["users"]
    }
    acl = Path(document["acl_file"])
    # The ACL file holds digests only; the passwords are each in a file of the owner's.
    assert all(password not in acl.read_text() for password in passwords.values())
    for user in document["users"]:
        assert stat.S_IMODE(Path(user["password_file"]).stat().st_mode) == 0o600
    assert stat.S_IMODE(acl.stat().st_mode) == 0o600
    port = free_port()
    server = start_redis(
        folder / "redis",
        port,
        extra_args=("--aclfile", str(acl)),
        url=f"redis://jobordre.worker:{passwords['jobordre.worker']}@127.0.0.1:{{port}}/0",
    )
    yield AclBroker(server, passwords)
    server.stop()


@pytest.fixture(scope="module")
def busy(acl_broker: AclBroker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A scenario run through a worker that is the workers' user; what it left behind."""
    home = tmp_path_factory.mktemp("home")
    system = System(acl_broker.server, home)
    system.start_worker(JOBORDRE_RELAY_SHARED_STREAM="false")
    try:
        path = home / "order.json"
        order = order_doc(internal_comment="Ring efter kl. 10, spørg efter Mette")
        path.write_text(json.dumps(order))
        made = system.json("order", "register", "--file", str(path), "--as", KBH)
        order_id = str(made["id"])
        system.json("order", "take", order_id, "--as", AKASSE)
        for cpr, who in ((CPR_1, KBH), (SECOND_CPR, AKASSE)):
            system.json(
                "placement", "register", order_id, "--cpr", "-", "--note", NOTE, "--as", who,
                stdin=cpr,
            )  # fmt: skip
        system.json("placement", "status", order_id, "1", "interview", "--as", EMPLOYER)
        system.json("order", "search", "tømrer", "--as", AKASSE)
        system.json("follow", order_id, "--caseworker", "kw-mette", "--as", AARHUS)
        system.json("order", "status", order_id, "inactivated", "--as", KBH)
    finally:
        system.stop_workers()
    # And commands still queued, as on a busy broker: nobody has taken them yet.
    queued = order_doc(title="Kok til kantinen i Valby", internal_comment="Kun med hygiejnebevis")
    client = Client(system.settings(), KBH, caseworker="kw-queued")
    try:
        client.send(CommandKind.REGISTER_ORDER, {"order": queued})
        placement = {"order_id": int(order_id), "cpr": THIRD_CPR, "note": NOTE}
        client.send(CommandKind.REGISTER_PLACEMENT, placement)
        client.send(CommandKind.SEARCH_ORDERS, {"text": "kantine"})
    finally:
        client.close()
    return {"order_id": order_id, "orders": [order, queued], "system": system}


def other(principal: str) -> str:
    return KBH if principal != KBH else AKASSE


def forbidden(principal: str) -> list[tuple[str, tuple[Any, ...]]]:
    """What an organisation's user must not do: each a command that must get NOPERM."""
    commands, queries = "dramatiq:jobordre.commands", "dramatiq:jobordre.queries"
    theirs = f"{PREFIX}:replies:{other(principal)}:cmd-00000001"
    authorities = audience_stream_key(PREFIX, AUTHORITIES)
    own, others = (audience_stream_key(PREFIX, p) for p in (principal, other(principal)))
    script = "return redis.call('hgetall', KEYS[1])"
    actions: list[tuple[str, tuple[Any, ...]]] = [
        ("read the queued commands", ("LRANGE", commands, 0, -1)),
        ("read a queued message", ("HGETALL", f"{commands}.msgs")),
        ("take a queued query", ("LPOP", queries)),
        ("delete the queue", ("DEL", commands)),
        ("read a queue by script", ("EVAL", script, 1, f"{queries}.msgs")),
        ("read the sorted queries", ("LRANGE", f"{queries}.fair", 0, -1)),
        ("pop another's reply", ("LPOP", theirs)),
        ("wait on another's reply", ("BLPOP", theirs, 0.01)),
        ("write another's reply", ("RPUSH", theirs, "forged")),
        ("read a protocol 1 reply", ("LPOP", f"{PREFIX}:reply:cmd-00000001")),
        ("read another's wake-ups", ("XRANGE", others, "-", "+")),
        ("read the shared header stream", ("XRANGE", f"{PREFIX}:events", "-", "+")),
        ("forge a wake-up of its own", ("XADD", own, "*", "wake", "{}")),
        ("forge an authorities' wake-up", ("XADD", authorities, "*", "wake", "{}")),
        ("read the workers' heartbeats", ("ZRANGE", "dramatiq:__heartbeats__", 0, -1)),
        ("read the dead letters", ("ZRANGE", f"{commands}.XQ", 0, -1)),
        ("list the keys", ("KEYS", f"{PREFIX}:*")),
        ("scan the keys", ("SCAN", 0)),
        ("flush the broker", ("FLUSHALL",)),
        ("reconfigure the broker", ("CONFIG", "GET", "*")),
        ("read the users", ("ACL", "LIST")),
    ]  # fmt: skip
    if principal.startswith("employer:"):
        actions.append(("read the authorities' wake-ups", ("XRANGE", authorities, "-", "+")))
    return actions


CASES = [
    pytest.param(principal, what, command, id=f"{principal}-{what.replace(' ', '-')}")
    for principal in (KBH, EMPLOYER)
    for what, command in forbidden(principal)
]


@pytest.mark.parametrize(("principal", "what", "command"), CASES)
def test_an_organisation_gets_noperm_on_what_is_not_its_own(
    acl_broker: AclBroker, busy: dict[str, Any], principal: str, what: str, command: tuple[Any, ...]
) -> None:
    user = acl_broker.as_user(principal.replace(":", "."))
    try:
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
            user.execute_command(*command)
    finally:
        user.close()


def test_the_default_user_is_off(acl_broker: AclBroker) -> None:
    anonymous = redis.Redis(port=acl_broker.server.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    anonymous.close()


@pytest.mark.parametrize("principal", [pytest.param(p, id=p) for p in ORGANISATIONS])
def test_an_organisation_enqueues_collects_its_replies_and_reads_its_wake_ups(
    acl_broker: AclBroker, busy: dict[str, Any], principal: str
) -> None:
    user = acl_broker.as_user(principal.replace(":", "."))
    worker = acl_broker.as_user("jobordre.worker")
    try:
        pipe = user.pipeline(transaction=True)
        pipe.hset("dramatiq:jobordre.queries.msgs", "probe-id", "{}")
        pipe.rpush("dramatiq:jobordre.queries", "probe-id")
        pipe.execute()
        reply_key = f"{PREFIX}:replies:{principal}:cmd-probe-1"
        worker.rpush(reply_key, "sealed reply")
        assert user.blpop([reply_key], 1) == (reply_key.encode(), b"sealed reply")
        own = audience_stream_key(PREFIX, principal)
        worker.xadd(own, {"wake": "{}"})
        assert user.xrange(own)
        if principal.startswith(("jobcentre:", "akasse:")):
            user.xrevrange(audience_stream_key(PREFIX, AUTHORITIES), count=1)
    finally:
        # The probe message is no command: the test takes it back as the worker.
        worker.lrem("dramatiq:jobordre.queries", 0, "probe-id")
        worker.hdel("dramatiq:jobordre.queries.msgs", "probe-id")
        user.close()
        worker.close()


#: The command that reads a whole value of each Redis type.
READ_WHOLE: dict[str, tuple[Any, ...]] = {
    "string": ("GET",),
    "hash": ("HGETALL",),
    "list": ("LRANGE", 0, -1),
    "set": ("SMEMBERS",),
    "zset": ("ZRANGE", 0, -1, "WITHSCORES"),
    "stream": ("XRANGE", "-", "+"),
}


def dump(client: redis.Redis) -> bytes:
    """Every key's name and value, whatever its type."""
    parts: list[bytes] = []
    for key in client.scan_iter(count=1000):
        command = READ_WHOLE[client.type(key).decode()]
        parts += [key, repr(client.execute_command(command[0], key, *command[1:])).encode()]
    return b"\n".join(parts)


def test_a_dump_of_the_busy_broker_holds_no_personal_data(
    acl_broker: AclBroker, busy: dict[str, Any]
) -> None:
    worker = acl_broker.as_user("jobordre.worker")
    try:
        everything = dump(worker)
    finally:
        worker.close()
    assert b"jobordre:headers:" in everything  # the dump saw the scenario
    assert b"dramatiq:jobordre.commands.msgs" in everything  # and commands still queued
    for secret in (CPR_1, SECOND_CPR, THIRD_CPR, NOTE):
        for form in (secret.encode(), json.dumps(secret).encode()[1:-1]):
            assert form not in everything, secret


def test_the_event_streams_hold_no_order_only_wake_ups(
    acl_broker: AclBroker, busy: dict[str, Any]
) -> None:
    worker = acl_broker.as_user("jobordre.worker")
    try:
        streams = [key for key in worker.scan_iter() if worker.type(key) == b"stream"]
        entries = b"\n".join(repr(worker.xrange(key)).encode() for key in streams)
    finally:
        worker.close()
    assert streams and entries
    for order in busy["orders"]:
        for value in (order["title"], order["internal_comment"], order["employer"]["cvr"]):
            assert json.dumps(value).encode()[1:-1] not in entries, value


def test_ops_see_the_queues_as_the_ops_user(acl_broker: AclBroker, busy: dict[str, Any]) -> None:
    done = subprocess.run(
        [str(JOBORDRE), "queues", "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={"JOBORDRE_REDIS_URL": acl_broker.url("jobordre.ops"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    queues = {q["name"]: q for q in json.loads(done.stdout)["queues"]}
    # What the scenario left queued: a command of each queue, as the workers' user sees it.
    assert queues["jobordre.commands"]["ready"] == 2
    assert queues["jobordre.queries"]["ready"] == 1


def test_a_protocol_2_client_works_as_its_organisations_user(
    acl_broker: AclBroker, busy: dict[str, Any], tmp_path: Path
) -> None:
    # Last in this module: its worker takes what the scenario left queued.
    system: System = busy["system"]
    key = tmp_path / "jobcentre_101.v2.key"
    system.json("keys", "create", KBH, "--protocol", "2", "--out", str(key))
    system.start_worker(JOBORDRE_RELAY_SHARED_STREAM="false")
    try:
        as_organisation = {
            "JOBORDRE_KEY_FILE": str(key),
            "JOBORDRE_REDIS_URL": acl_broker.url(KBH.replace(":", ".")),
        }
        found = system.cli(
            "order", "get", busy["order_id"], "--as", KBH, "--json", **as_organisation
        )
        assert found.code == 0, found.out + found.err
        assert json.loads(found.out)["id"] == int(busy["order_id"])
    finally:
        system.stop_workers()
