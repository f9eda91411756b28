"""The client library: send commands to the workers and wait for their replies.

What code outside the worker imports (the command line, the notifier, the scheduler, the
bench): :class:`Client` (workers/client/client.py), :func:`read_key_file` (an
organisation's key file, workers/client/credentials.py) and the one way a configured Redis
URL becomes a redis-py client, :func:`connect_redis` (workers/transport/redis_connection.py).
"""

from workers.client.client import Client
from workers.client.credentials import read_key_file
from workers.transport.redis_connection import connect_redis

__all__ = ["Client", "connect_redis", "read_key_file"]
