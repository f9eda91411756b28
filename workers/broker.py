"""The Redis broker, configured once for workers and clients alike.

Production and the embedded default share this code path: only the URL differs. With no
``JOBORDRE_REDIS_URL`` the URL is read from the address file ``jobordre up`` writes.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from shared.commands import CommandKind
from shared.errors import Unavailable
from shared.settings import Settings

#: Queue of the commands that change the store.
COMMANDS_QUEUE = "jobordre.commands"
#: Queue of read-only queries; kept apart so a backlog of writes never delays a search.
QUERIES_QUEUE = "jobordre.queries"
#: Longest a single job may run before Dramatiq interrupts it, in milliseconds.
JOB_TIME_LIMIT_MS = 60_000


def queue_for(kind: CommandKind) -> str:
    """The queue a command kind travels on."""
    return COMMANDS_QUEUE if kind.writes else QUERIES_QUEUE


def redact(url: str) -> str:
    """A Redis URL fit for messages and logs: the password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve_redis_url(settings: Settings) -> str:
    """``JOBORDRE_REDIS_URL``, else the embedded broker's address; :class:`Unavailable` if none."""
    if settings.redis_url:
        return settings.redis_url
    try:
        address = json.loads(settings.embedded_address_file.read_text())
        return str(address["redis_url"])
    except (OSError, ValueError, KeyError):
        raise Unavailable(
            f"no jobordre is running for JOBORDRE_HOME={settings.home}: start one with "
            "`jobordre up`, or set JOBORDRE_REDIS_URL to a Redis with workers"
        ) from None


def build_broker(settings: Settings, url: str) -> RedisBroker:
    """A RedisBroker with jobordre's retry policy; no connection is made until first use."""
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=url,
        middleware=[
            AgeLimit(),
            TimeLimit(time_limit=JOB_TIME_LIMIT_MS),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            Retries(
                max_retries=settings.max_retries,
                min_backoff=settings.min_backoff_ms,
                max_backoff=settings.max_backoff_ms,
            ),
        ],
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
        # Workers beat and run maintenance on a timer (workers/ops/recovery.py), so a
        # silent worker can be declared dead well before Dramatiq's default of 60 s.
        heartbeat_timeout=settings.heartbeat_timeout_ms,
    )
