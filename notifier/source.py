"""Where the notifier's changes come from, behind two small protocols.

:class:`Foundation` asks the workers (through Redis, like every client): the caseworker's
follows and the organisation's inbox, the authoritative, gap-free list of events by
``seq``. :class:`EventStream` reads the Redis stream the relay pushes event headers to; it
wakes the notifier the moment a change is committed, and is never trusted for more than
that (anyone who can write to Redis can add a header; see :mod:`notifier.service`). Every
failure to reach Redis or a worker is raised as :class:`~shared.errors.Unavailable`, the
notifier's cue to reconnect.
"""

from __future__ import annotations

from typing import Any, Protocol

import redis

from shared.commands import CommandKind
from shared.errors import Unavailable
from shared.events import EventHeader, parse_entry, stream_key
from workers.client import connect_redis

#: The most events one inbox query returns (the query's own limit).
INBOX_PAGE = 1000
#: The most stream entries read at once.
STREAM_BATCH = 1000
#: How many of the newest stream entries :meth:`EventStream.tail` looks at.
TAIL_WINDOW = 100
#: The stream id before every entry.
STREAM_START = "0-0"


class Foundation(Protocol):
    """The two queries the notifier needs."""

    def following(self, caseworker: str) -> dict[str, Any]:
        """The ``following`` query's result."""
        ...

    def inbox(self, since: str, limit: int) -> dict[str, Any]:
        """The ``inbox`` query's result after cursor ``since``: ``{"events": [...],
        "cursor": str, "from_seq": int, "head": str}`` (the last two from workers that
        know event-log epochs)."""
        ...

    def unfollow(self, caseworker: str, order_id: int) -> None:
        """Stop ``caseworker`` following order ``order_id`` (the ``unfollow`` command)."""
        ...


class EventStream(Protocol):
    """The Redis stream of event headers."""

    def tail(self) -> tuple[str, int | None, str | None]:
        """The id of the newest entry (:data:`STREAM_START` if none), the highest event
        seq among the newest entries of the newest header's log (``None`` if they hold no
        header) and that log's epoch (``None`` if none, or a header without one)."""
        ...

    def read(self, after: str, block_ms: int) -> list[tuple[str, EventHeader | None]]:
        """Entries after stream id ``after``, waiting up to ``block_ms`` for the first; an
        entry without a readable header comes as ``None`` (its id still counts)."""
        ...


class ClientFoundation:
    """:class:`Foundation` over :class:`workers.client.Client`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def following(self, caseworker: str) -> dict[str, Any]:
        """Ask the workers what ``caseworker`` follows."""
        result: dict[str, Any] = self.client.call(CommandKind.FOLLOWING, {"caseworker": caseworker})
        return result

    def inbox(self, since: str, limit: int) -> dict[str, Any]:
        """Ask the workers for the organisation's event headers after cursor ``since``."""
        result: dict[str, Any] = self.client.call(
            CommandKind.INBOX, {"since": since, "limit": limit, "headers_only": True}
        )
        return result

    def unfollow(self, caseworker: str, order_id: int) -> None:
        """Send the same ``unfollow`` command as ``jobordre unfollow ORDER_ID``."""
        self.client.call(CommandKind.UNFOLLOW, {"caseworker": caseworker, "order_id": order_id})


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair: ``"1700000000000-3"`` → ``(1700000000000, 3)``."""
    millis, _, sequence = stream_id.partition("-")
    return int(millis), int(sequence or 0)


class RedisEventStream:
    """:class:`EventStream` on a real Redis; redis-py reconnects on the next call."""

    def __init__(self, url: str, prefix: str) -> None:
        self.key = stream_key(prefix)
        # A blocking XREAD must not outlive the socket timeout: reads block at most 5 s.
        self.redis = connect_redis(url, socket_connect_timeout=5, socket_timeout=15)

    def tail(self) -> tuple[str, int | None, str | None]:
        """The newest entry's id, and the highest seq among the newest :data:`TAIL_WINDOW`
        entries of the newest header's log: a relay may push an old header again after
        newer ones (at-least-once), so the very last entry alone could understate how far
        the log has come. It may still understate it: readers take it as a hint only."""
        try:
            newest: Any = self.redis.xrevrange(self.key, count=TAIL_WINDOW)
        except redis.RedisError as error:
            raise Unavailable(f"cannot read the event stream ({type(error).__name__})") from None
        if not newest:
            return STREAM_START, None, None
        headers = [h for h in (parse_entry(fields) for _, fields in newest) if h is not None]
        if not headers:
            return newest[0][0].decode(), None, None
        epoch = headers[0].epoch
        seqs = [header.seq for header in headers if header.epoch == epoch]
        return newest[0][0].decode(), max(seqs), epoch or None

    def read(self, after: str, block_ms: int) -> list[tuple[str, EventHeader | None]]:
        """Up to :data:`STREAM_BATCH` entries after ``after``."""
        try:
            reply: Any = self.redis.xread(
                {self.key: after}, count=STREAM_BATCH, block=max(1, min(block_ms, 5000))
            )
        except redis.RedisError as error:
            raise Unavailable(f"lost the event stream ({type(error).__name__})") from None
        return [
            (entry_id.decode(), parse_entry(fields))
            for _key, items in reply or []
            for entry_id, fields in items
        ]

    def close(self) -> None:
        """Close the connection."""
        self.redis.close()
