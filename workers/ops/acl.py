"""The Redis ACL file that puts each organisation alone on the broker (``jobordre broker acl``).

One Redis user per organisation, one for the workers (the relay runs in them) and one for
ops; the ``default`` user is switched off. Each organisation's user (Redis 7: key
permissions ``%W~`` / ``%R~``) may only:

- **enqueue**: write the two queues' keys (``MULTI``, ``HSET``, ``RPUSH``, ``EXEC``, docs/
  protocol.md § 2) and never read them, so it cannot see, take or delete anyone's queued
  command;
- **collect its replies**: read and pop its own reply lists,
  ``<prefix>:replies:<principal>:*`` (protocol 2, § 14.7; a protocol 1 reply list,
  ``<prefix>:reply:<command_id>``, names no principal, so an ACL'd client speaks protocol 2);
- **wake on its events**: read its own wake-up stream, ``<prefix>:headers:<principal>``,
  and a jobcentre or a-kasse also ``<prefix>:headers:authorities`` (shared/events.py),
  never write one.

Anything else (another organisation's replies or streams, the shared header stream, the
workers' keys, ``KEYS``, ``FLUSHALL``, ``CONFIG``) is ``NOPERM``. Passwords are random; the
ACL file holds only their SHA-256, and each user's password is written to a file of its
own (mode 0600) for the operator to hand over, and kept: running the command again keeps
existing users' passwords and adds users for new organisations.

The embedded broker (``jobordre up``) stays single-user on its 0700 socket: its Redis
(6.2) has no read/write key permissions, and nobody else can reach it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.events import audience_stream_key, audiences_of
from workers.transport.broker import COMMANDS_QUEUE, QUERIES_QUEUE
from workers.transport.dramatiq_redis import NAMESPACE as DRAMATIQ_NAMESPACE
from workers.transport.dramatiq_redis import messages_key, queue_key

#: The workers' user (the relay runs inside the workers).
WORKER_USER = "jobordre.worker"
#: The ops people's user: reads everything of jobordre's, requeues and retries.
OPS_USER = "jobordre.ops"
#: What every user may do on its connection.
CONNECTION = "+ping +hello +auth +client|id +select"


def user_name(principal: str) -> str:
    """An organisation's Redis user: its principal with ``.`` for ``:`` (a URL's userinfo
    cannot hold a colon), e.g. ``jobcentre.101``."""
    return principal.replace(":", ".")


def reply_pattern(prefix: str, principal: str) -> str:
    """The key pattern of an organisation's reply lists (protocol 2, § 14.7)."""
    return f"{prefix}:replies:{principal}:*"


def queue_keys() -> list[str]:
    """The keys an enqueue writes: each queue's list and message hash."""
    keys: list[str] = []
    for queue in (COMMANDS_QUEUE, QUERIES_QUEUE):
        keys += [queue_key(DRAMATIQ_NAMESPACE, queue), messages_key(DRAMATIQ_NAMESPACE, queue)]
    return keys


def organisation_rules(prefix: str, principal: str) -> str:
    """The ACL rules of one organisation's user (see the module docstring)."""
    writes = " ".join(f"%W~{key}" for key in queue_keys())
    streams = " ".join(f"%R~{audience_stream_key(prefix, a)}" for a in audiences_of(principal))
    return (
        f"resetkeys resetchannels -@all {CONNECTION} "
        "+multi +exec +discard +hset +rpush +wait "
        "+blpop +lpop +evalsha +eval +script|load "
        "+xread +xrange +xrevrange "
        f"{writes} ~{reply_pattern(prefix, principal)} {streams}"
    )


def worker_rules(prefix: str) -> str:
    """The workers': everything on Dramatiq's and jobordre's keys, nothing of the server's
    administration (no ``CONFIG``, ``ACL``, ``FLUSHALL``, ``SHUTDOWN``). Dramatiq's scripts
    name the bare namespace as their key."""
    return (
        f"resetkeys resetchannels ~{DRAMATIQ_NAMESPACE} ~{DRAMATIQ_NAMESPACE}:* ~{prefix}:* "
        "+@all -@admin -flushall -flushdb -swapdb"
    )


def ops_rules(prefix: str) -> str:
    """Ops: read every key of Dramatiq's and jobordre's, requeue and retry on the queues."""
    return (
        f"resetkeys resetchannels ~{DRAMATIQ_NAMESPACE} %R~{DRAMATIQ_NAMESPACE}:* %R~{prefix}:* "
        f"~{DRAMATIQ_NAMESPACE}:jobordre.* -@all {CONNECTION} "
        "+@read +multi +exec +discard +hset +rpush +wait +eval +evalsha +script|load -keys"
    )


@dataclass(frozen=True)
class AclUser:
    """One user of the ACL file."""

    name: str
    #: The organisation's principal; None for the workers' and ops' users.
    principal: str | None
    rules: str


def users(prefix: str, principals: list[str]) -> list[AclUser]:
    """Every user: the workers', ops' and one per organisation, in that order."""
    made = [
        AclUser(WORKER_USER, None, worker_rules(prefix)),
        AclUser(OPS_USER, None, ops_rules(prefix)),
    ]
    for principal in sorted(set(principals)):
        made.append(AclUser(user_name(principal), principal, organisation_rules(prefix, principal)))
    return made


def acl_text(made: list[AclUser], passwords: dict[str, str]) -> str:
    """The ACL file: ``default`` off, then each user with the SHA-256 of its password."""
    lines = ["user default off resetkeys -@all"]
    for user in made:
        digest = hashlib.sha256(passwords[user.name].encode()).hexdigest()
        lines.append(f"user {user.name} on #{digest} {user.rules}")
    return "\n".join(lines) + "\n"


def password(folder: Path, name: str) -> str:
    """The user's password from its file, or a new one written there (mode 0600)."""
    path = folder / f"{name}.password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(32)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(password + "\n")
    return password
