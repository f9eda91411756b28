"""The one place a configured Redis URL becomes a redis-py client.

``redis://``, ``rediss://`` and ``unix://`` go to redis-py's own ``from_url``. A
``redis+sentinel://`` URL (shared/redis_url.py) becomes a client on redis-py's
:class:`~redis.sentinel.Sentinel` master pool: every new connection asks the sentinels
for the master's address, and a connection that finds the old master gone (refused,
reset, or demoted to a replica) is dropped, so the next command — or redis-py's retry of
the failed one — finds the promoted replica. Workers, clients, the notifier and the ops
commands all connect through :func:`connect_redis`, so they all follow a failover.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

from shared.redis_url import is_sentinel_url, parse_sentinel_url

#: Connection options a sentinel connection takes from the caller's (timeouts only: the
#: sentinels answer a question, they hold no data).
SENTINEL_SOCKET_OPTIONS = ("socket_connect_timeout", "socket_timeout", "socket_keepalive")


class SentinelRedis(redis.Redis):
    """A client on a Sentinel master pool that also closes its sentinel connections."""

    def close(self) -> None:
        """Close the master connections and the sentinel connections behind them."""
        pool = self.connection_pool
        super().close()
        if isinstance(pool, SentinelConnectionPool):
            pool.sentinel_manager.close()


def connect_redis(url: str, **options: Any) -> redis.Redis:
    """A redis-py client for ``url``; no connection is made until the first command.

    ``options`` are redis-py connection options (timeouts, ``health_check_interval``...).
    For a Sentinel URL they apply to the master's connections, and the timeouts also to
    the sentinels'. A malformed Sentinel URL raises :class:`~shared.errors.InvalidInput`.
    """
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    address = parse_sentinel_url(url)
    sentinel_options: dict[str, Any] = {
        key: options[key] for key in SENTINEL_SOCKET_OPTIONS if key in options
    }
    if address.sentinel_password is not None:
        sentinel_options["password"] = address.sentinel_password
    tls_options: dict[str, Any] = dict(address.tls_options)
    if address.tls:
        sentinel_options.update(ssl=True, **tls_options)
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=sentinel_options)
    client: redis.Redis = sentinel.master_for(
        address.master_name,
        redis_class=SentinelRedis,
        db=address.db,
        username=address.username,
        password=address.password,
        ssl=address.tls,
        **tls_options,
        **options,
    )
    return client
