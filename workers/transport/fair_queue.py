"""Fair share of the queries queue: each organisation's queries are served in turn.

``jobordre.queries`` is one FIFO list: 2,000 searches of one jobcentre put every other
organisation's ``get_order`` behind them (figures in docs/performance.md).
Clients still enqueue onto that list exactly as before (docs/protocol.md § 2: ``HSET`` on
``dramatiq:jobordre.queries.msgs``, ``RPUSH`` on ``dramatiq:jobordre.queries``); a
worker's fetch of the queue is this module's script instead of Dramatiq's:

1. **Sort.** Up to :data:`SORT_BATCH` ids are moved from the head of the list onto a list
   per organisation, ``dramatiq:jobordre.queries.fair:<principal>`` (the principal read
   from the message's envelope; a message without a readable one goes to the list of
   ``?``), and an organisation whose list was empty joins the ring
   ``dramatiq:jobordre.queries.fair`` (a list of principals, each at most once).
2. **Serve round-robin.** The ring's first principal gives the oldest id of its list and
   goes to the ring's end if it has more; until ``prefetch`` ids are taken. Each taken id
   joins the worker's unacked set and its message is returned, as Dramatiq's own fetch
   does (same ack set, heartbeat, acks, requeues, dead-worker recovery: those put an id
   back on ``dramatiq:jobordre.queries``, where it is sorted again).

Both steps are one Lua script, so an id is always in exactly one place (the list, an
organisation's list, or a worker's unacked set) and delivery stays at-least-once. Whose
turn it is does not depend on the signature (a sort cannot verify one): a forged envelope
naming another organisation only queues in that organisation's turn, and is refused by the
foundation when its turn comes. An organisation's own queries keep their order.
"""

from __future__ import annotations

from typing import Any

import redis

#: Ids moved from the queue onto the organisations' lists per fetch: each costs a JSON
#: decode inside Redis (microseconds for a query), so a fetch blocks Redis for at most a
#: few milliseconds, and a backlog of thousands is sorted within a few fetches.
SORT_BATCH = 200

#: KEYS: the queue's list, its message hash, the ring, the worker's unacked set, the
#: heartbeat set. ARGV: the prefix of the organisations' lists, SORT_BATCH, prefetch, the
#: worker's id, now in ms. Returns the messages taken.
FAIR_FETCH = """
redis.call('zadd', KEYS[5], ARGV[5], ARGV[4])
local function principal_of(data)
  if not data then return '?' end
  local ok, message = pcall(cjson.decode, data)
  if not ok or type(message) ~= 'table' or type(message.args) ~= 'table' then return '?' end
  local raw = message.args[1]
  if type(raw) ~= 'string' then return '?' end
  local ok2, envelope = pcall(cjson.decode, raw)
  if not ok2 or type(envelope) ~= 'table' or type(envelope.principal) ~= 'string' then
    return '?'
  end
  return envelope.principal
end
for _ = 1, tonumber(ARGV[2]) do
  local id = redis.call('lpop', KEYS[1])
  if not id then break end
  local who = principal_of(redis.call('hget', KEYS[2], id))
  if redis.call('rpush', ARGV[1] .. who, id) == 1 then
    redis.call('rpush', KEYS[3], who)
  end
end
local ids = {}
local wanted = tonumber(ARGV[3])
while #ids < wanted do
  local who = redis.call('lpop', KEYS[3])
  if not who then break end
  local own = ARGV[1] .. who
  local id = redis.call('lpop', own)
  if id then
    ids[#ids + 1] = id
    redis.call('sadd', KEYS[4], id)
  end
  if redis.call('llen', own) > 0 then
    redis.call('rpush', KEYS[3], who)
  end
end
if #ids == 0 then return {} end
return redis.call('hmget', KEYS[2], unpack(ids))
"""

#: KEYS: the ring. ARGV: the prefix of the organisations' lists. Returns the number of
#: ids sorted and waiting, then the oldest id of each organisation's list.
FAIR_WAITING = """
local total = 0
local heads = {}
for _, who in ipairs(redis.call('lrange', KEYS[1], 0, -1)) do
  local own = ARGV[1] .. who
  total = total + redis.call('llen', own)
  local head = redis.call('lindex', own, 0)
  if head then heads[#heads + 1] = head end
end
return {total, heads}
"""


def ring_key(namespace: str, queue: str) -> str:
    """The list of organisations with queries sorted and waiting, each once."""
    return f"{namespace}:{queue}.fair"


def own_prefix(namespace: str, queue: str) -> str:
    """The prefix of each organisation's list: ``<prefix><principal>``."""
    return f"{ring_key(namespace, queue)}:"


class FairQueue:
    """The fair fetch and the count of what waits sorted, for one queue on one Redis."""

    def __init__(self, client: redis.Redis, namespace: str, queue: str) -> None:
        self.namespace = namespace
        self.queue = queue
        self._fetch = client.register_script(FAIR_FETCH)
        self._waiting = client.register_script(FAIR_WAITING)

    def fetch(self, worker_id: str, prefetch: int, now_ms: int) -> list[bytes]:
        """Up to ``prefetch`` messages, one organisation after another (module docstring),
        held unacked by ``worker_id`` as Dramatiq's fetch holds them."""
        queue = f"{self.namespace}:{self.queue}"
        taken: Any = self._fetch(
            keys=[
                queue,
                f"{queue}.msgs",
                ring_key(self.namespace, self.queue),
                f"{self.namespace}:__acks__.{worker_id}.{self.queue}",
                f"{self.namespace}:__heartbeats__",
            ],
            args=[own_prefix(self.namespace, self.queue), SORT_BATCH, prefetch, worker_id, now_ms],
        )
        return [message for message in taken if message is not None]

    def waiting(self) -> tuple[int, list[bytes]]:
        """How many ids wait on the organisations' lists, and the oldest id of each list."""
        total, heads = self._waiting(
            keys=[ring_key(self.namespace, self.queue)],
            args=[own_prefix(self.namespace, self.queue)],
        )
        return int(total), list(heads)
