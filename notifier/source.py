"""Where the notifier's changes come from, behind two small protocols.

:class:`WorkerQueries` asks the workers (through Redis, like every client): the caseworker's
follows and the organisation's inbox, the authoritative, gap-free list of events by
``seq``. :class:`EventStream` reads the wake-up streams the relay pushes to, one per
audience (:func:`shared.events.audience_stream_key`); it wakes the notifier the moment a
change is committed, and is never trusted for more than that (anyone who can write to
Redis can add an entry; see :mod:`notifier.service`). Every
failure to reach Redis or a worker is raised as :class:`~shared.errors.Unavailable`, the
notifier's cue to reconnect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import redis

from shared.commands import CommandKind
from shared.errors import Unavailable
from shared.events import Wake, audience_stream_key, audiences_of, parse_wake
from workers.client import connect_redis

#: The most events one inbox query returns (the query's own limit).
INBOX_PAGE = 1000
#: The most stream entries read at once.
STREAM_BATCH = 1000
#: How many of the newest stream entries :meth:`EventStream.tail` looks at.
TAIL_WINDOW = 100
#: The stream id before every entry.
STREAM_START = "0-0"


class WorkerQueries(Protocol):
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


class Signal(Protocol):
    """What a stream entry says: an event was committed (a :class:`~shared.events.Wake`
    or an :class:`~shared.events.EventHeader`). Never more than a cue to ask the inbox."""

    @property
    def seq(self) -> int:
        """The event's position in its log."""
        ...

    @property
    def epoch(self) -> str:
        """The event log's identity; empty if not known."""
        ...

    def reaches(self, principal: str) -> bool:
        """Whether the event is for ``principal``."""
        ...


class EventStream(Protocol):
    """The Redis stream(s) that wake the notifier."""

    def tail(self) -> tuple[str, int | None, str | None]:
        """The id of the newest entry (:data:`STREAM_START` if none), the highest event
        seq among the newest entries of the newest header's log (``None`` if they hold no
        header) and that log's epoch (``None`` if none, or a header without one)."""
        ...

    def read(self, after: str, block_ms: int) -> Sequence[tuple[str, Signal | None]]:
        """Entries after the position ``after``, waiting up to ``block_ms`` for the first,
        each with the position past it; an entry without a readable signal comes as
        ``None`` (its position still counts)."""
        ...


class ClientQueries:
    """:class:`WorkerQueries` over :class:`workers.client.Client`."""

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


def went_back(tail: str, position: str) -> bool:
    """Whether a stream ends (``tail``) before where ``position`` read up to in it: a Redis
    that restarted with shorter streams. Positions of several streams are compared stream
    by stream (see :class:`RedisEventStream`)."""
    return any(
        stream_id_key(end) < stream_id_key(read)
        for end, read in zip(tail.split(), position.split(), strict=False)
    )


class RedisEventStream:
    """:class:`EventStream` on the wake-up streams of one organisation's audiences
    (:func:`shared.events.audiences_of`: its own, and every authority's for a jobcentre or
    an a-kasse), which a Redis ACL lets it read; redis-py reconnects on the next call.

    A position in them is the id read up to in each stream, space-separated, in the order
    of :attr:`keys`; a single id stands for the first stream's (the others from the start).
    """

    def __init__(self, url: str, prefix: str, principal: str) -> None:
        self.keys = [audience_stream_key(prefix, a) for a in audiences_of(principal)]
        # A blocking XREAD must not outlive the socket timeout: reads block at most 5 s.
        self.redis = connect_redis(url, socket_connect_timeout=5, socket_timeout=15)

    def _positions(self, position: str) -> list[str]:
        given = position.split()
        return given + [STREAM_START] * (len(self.keys) - len(given))

    def tail(self) -> tuple[str, int | None, str | None]:
        """Where each stream ends, and the highest seq among the newest
        :data:`TAIL_WINDOW` entries of each of the newest wake-up's log: a relay may push
        an old event again after newer ones (at-least-once), so the very last entry alone
        could understate how far the log has come. It may still understate it: readers
        take it as a hint only."""
        ends: list[str] = []
        newest: list[tuple[tuple[int, int], Wake]] = []
        try:
            for key in self.keys:
                entries: Any = self.redis.xrevrange(key, count=TAIL_WINDOW)
                ends.append(entries[0][0].decode() if entries else STREAM_START)
                for entry_id, fields in entries:
                    wake = parse_wake(fields)
                    if wake is not None:
                        newest.append((stream_id_key(entry_id.decode()), wake))
        except redis.RedisError as error:
            raise Unavailable(f"cannot read the event stream ({type(error).__name__})") from None
        if not newest:
            return " ".join(ends), None, None
        epoch = max(newest, key=lambda pair: pair[0])[1].epoch
        seqs = [wake.seq for _, wake in newest if wake.epoch == epoch]
        return " ".join(ends), max(seqs), epoch or None

    def read(self, after: str, block_ms: int) -> list[tuple[str, Wake | None]]:
        """Up to :data:`STREAM_BATCH` entries of each stream after the position ``after``,
        each with the position just past it."""
        positions = self._positions(after)
        try:
            reply: Any = self.redis.xread(
                dict(zip(self.keys, positions, strict=True)),
                count=STREAM_BATCH,
                block=max(1, min(block_ms, 5000)),
            )
        except redis.RedisError as error:
            raise Unavailable(f"lost the event stream ({type(error).__name__})") from None
        read: list[tuple[str, Wake | None]] = []
        for key, items in reply or []:
            index = self.keys.index(key.decode())
            for entry_id, fields in items:
                positions[index] = entry_id.decode()
                read.append((" ".join(positions), parse_wake(fields)))
        return read

    def close(self) -> None:
        """Close the connection."""
        self.redis.close()
