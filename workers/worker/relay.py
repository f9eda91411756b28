"""The relay: pushes event headers from the store's outbox to the Redis streams.

Each event goes whole onto ``<prefix>:events`` (setting ``relay_shared_stream``) and as
a wake-up, its id, seq and epoch only, onto the stream of each of its audiences
(:func:`shared.events.audience_stream_key`), which a Redis ACL lets only that audience read.

At-least-once: a batch of headers is pushed, then the store's high-water mark is raised to
the batch's highest seq (``shared.eventlog.mark_pushed``). A crash in between pushes them
again later with the same ``id`` and ``seq`` (readers deduplicate by ``seq``); a crash
before the push leaves them above the mark for the next sweep. Nothing is dropped.

Beside the stream the relay keeps ``<prefix>:events:published``: the event log's epoch and
the highest seq pushed from it. A store whose log ends below what this Redis has published
of the same epoch has lost events readers may have seen (it was restored from a backup, or
lost its last commits): its relay starts a new epoch at its first flush, so readers' cursors
of the old one are resolved to where the two logs part (``shared.eventlog.resolve``) and
no new event is taken for one already seen.
"""

from __future__ import annotations

import json
import logging
import threading
from functools import partial
from typing import Any

import redis

from shared import eventlog
from shared.clock import utc_now
from shared.events import (
    EVENTS_STREAM_MAXLEN,
    EventHeader,
    Wake,
    audience_stream_key,
    audiences_reached,
    parse_entry,
    stream_key,
)
from shared.settings import Settings
from shared.store import Store
from shared.store.group_commit import GroupCommit

logger = logging.getLogger("jobordre.relay")

#: Events pushed per Redis round trip.
RELAY_BATCH = 500
#: How long a nudged relay gathers further commits before it flushes, in milliseconds.
#: Under load commits nudge far more often than a flush (a store read, a Redis round trip,
#: a store write) pays for itself; gathering for a moment makes one flush carry many
#: commits' events. It adds at most this much to an event's way to the stream.
RELAY_GATHER_MS = 5

#: Pushes a batch of headers and raises the published seq, in one step no other relay can
#: come between: a header of the current epoch at or below the seq already published is
#: on the streams (every relay pushes a contiguous run from the store's mark, in order),
#: so it is skipped and two relays flushing at once push each event once. Headers of an
#: earlier epoch still waiting (seq at or below the epoch's base) are pushed as they are.
#: Each event goes whole onto the shared stream (unless ARGV[4] is "0") and as a wake-up
#: onto the stream of each of its audiences.
#: KEYS: the published hash, the shared stream, then the audiences' streams. ARGV: epoch,
#: its base seq, the streams' approximate maximum length, whether to push the shared
#: stream, then per event: seq, header, wake-up, how many audiences, and their indexes in
#: KEYS. Returns how many events it added.
_PUSH = """
if redis.replicate_commands then redis.replicate_commands() end
local published = redis.call('HGET', KEYS[1], 'epoch')
local top = -1
if published == ARGV[1] then
  top = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
end
local base = tonumber(ARGV[2])
local highest = -1
local added = 0
local i = 5
while i <= #ARGV do
  local seq = tonumber(ARGV[i])
  local count = tonumber(ARGV[i + 3])
  if seq <= base or seq > top then
    if ARGV[4] == '1' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[i + 1])
    end
    for j = 1, count do
      local stream = KEYS[tonumber(ARGV[i + 3 + j])]
      redis.call('XADD', stream, 'MAXLEN', '~', ARGV[3], '*', 'wake', ARGV[i + 2])
    end
    added = added + 1
  end
  if seq > highest then highest = seq end
  i = i + 4 + count
end
if published ~= ARGV[1] or top < highest then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', highest)
end
return added
"""


def push_arguments(
    prefix: str, batch: list[tuple[int, str]], epoch: str
) -> tuple[list[str], list[Any]]:
    """The audiences' stream keys and the per-event arguments of :data:`_PUSH`."""
    keys: dict[str, int] = {}
    arguments: list[Any] = []
    for seq, header in batch:
        fields = json.loads(header)
        streams = [
            audience_stream_key(prefix, audience)
            for audience in audiences_reached(fields["audience"], fields["employer_cvr"])
        ]
        # KEYS[1] and KEYS[2] are the published hash and the shared stream.
        indexes = [keys.setdefault(stream, len(keys) + 3) for stream in streams]
        wake = Wake(str(fields["id"]), seq, str(fields.get("epoch") or epoch))
        arguments += [seq, header, wake.to_json(), len(indexes), *indexes]
    return list(keys), arguments


def published_key(settings: Settings) -> str:
    """The Redis hash of the epoch and highest seq the relays have published."""
    return f"{events_stream_key(settings)}:published"


def events_stream_key(settings: Settings) -> str:
    """The Redis key of the event-header stream."""
    return stream_key(settings.redis_prefix)


class Relay:
    """Moves unpushed events from one store to one Redis; safe to call from many threads."""

    def __init__(
        self,
        store: Store,
        client: redis.Redis,
        settings: Settings,
        *,
        writes: GroupCommit | None = None,
    ) -> None:
        self.store = store
        #: Where the mark is written: the process's group commit, so that under load it
        #: shares the commands' transactions and takes no write lock of its own; without
        #: one, a group commit of the relay's own (each flush a transaction by itself).
        self.writes = writes or GroupCommit(store)
        self.client = client
        self.key = events_stream_key(settings)
        self.prefix = settings.redis_prefix
        self.shared_stream = settings.relay_shared_stream
        self.published = published_key(settings)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._identity_checked = False

    def nudge(self) -> None:
        """Ask the sweeping thread to flush now (after a commit).

        Committing threads do not push themselves: under load one flush then carries the
        events of many commits in one Redis round trip and one SQLite write.
        """
        self._wake.set()

    def flush(self) -> int:
        """Push every event not pushed yet; returns how many were pushed."""
        pushed = 0
        # One flusher per process at a time: concurrent ones would only push duplicates.
        with self._lock:
            if not self._identity_checked:
                self.check_identity()
                self._identity_checked = True
            while True:
                with self.store.read() as conn:
                    batch = eventlog.unpushed(conn, RELAY_BATCH)
                    epoch, base = eventlog.epochs(conn)[-1]
                if not batch:
                    return pushed
                # Headers of an earlier epoch still waiting are published under it; the
                # marker follows the log's current epoch only.
                streams, arguments = push_arguments(self.prefix, batch, epoch)
                self.client.eval(
                    _PUSH,
                    2 + len(streams),
                    self.published,
                    self.key,
                    *streams,
                    epoch,
                    base,
                    EVENTS_STREAM_MAXLEN,
                    "1" if self.shared_stream else "0",
                    *arguments,
                )
                # The batch is every event up to its last seq (see eventlog.unpushed).
                self.writes.run(partial(eventlog.mark_pushed, upto=batch[-1][0]))
                pushed += len(batch)

    def check_identity(self) -> str | None:
        """Start a new epoch if this Redis has published more of the store's current epoch
        than the store holds (see the module's docstring); returns the new epoch, if any.

        Workers call it before they take their first job, so that no event of the restored
        store's new history is written under the old identity; the first flush checks
        again, for a worker that could not reach Redis then.
        """
        mark: Any = self.client.hgetall(self.published)
        if not mark or b"epoch" not in mark:
            return None
        epoch, seq = mark[b"epoch"].decode(), int(mark.get(b"seq", b"0"))
        with self.store.read() as conn:
            behind = eventlog.current_epoch(conn) == epoch and eventlog.last_seq(conn) < seq
        if not behind:
            return None
        with self.store.write() as conn:
            started = eventlog.start_epoch(conn, utc_now().isoformat(), replacing=epoch)
            end = eventlog.last_seq(conn)
        if started is not None:
            logger.warning(
                "the store's event log ends at event %d, but this Redis has published up to "
                "event %d of it: the store was restored or lost its last commits. New "
                "events start log epoch %s, so readers are not misled by their cursors",
                end,
                seq,
                started,
            )
        return started

    def sweep_forever(self, interval_ms: int, stop: threading.Event) -> None:
        """Flush when nudged, and every ``interval_ms`` anyway, until ``stop`` is set.

        The first flush at start pushes what a crashed predecessor left; a failed sweep
        (Redis or SQLite away) waits for the next one.
        """
        while not stop.is_set():
            try:
                self.flush()
            except Exception:
                logger.warning("relay sweep failed; retrying in %d ms", interval_ms, exc_info=True)
            if self._wake.wait(interval_ms / 1000):
                stop.wait(RELAY_GATHER_MS / 1000)
            # Events committed before a nudge lost here are in the next flush anyway.
            self._wake.clear()


def latest_stream_id(client: redis.Redis, key: str) -> str:
    """The id of the newest header on the stream, or ``0-0`` when it is empty."""
    newest: Any = client.xrevrange(key, count=1)
    return str(newest[0][0].decode()) if newest else "0-0"


def read_headers(
    client: redis.Redis, key: str, after: str, block_ms: int, count: int = 1000
) -> tuple[str, list[EventHeader]]:
    """Headers pushed after stream id ``after``, waiting up to ``block_ms`` for the first;
    returns the id to continue from and the headers (empty after the wait)."""
    reply: Any = client.xread({key: after}, block=block_ms, count=count)
    headers = []
    for entry_id, fields in reply[0][1] if reply else []:
        after = entry_id.decode()
        header = parse_entry(fields)
        if header is not None:
            headers.append(header)
    return after, headers
