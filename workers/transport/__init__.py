"""The Redis transport: the broker (workers/transport/broker.py), the connection
(redis_connection.py), the outbound of replies and acks (outbound.py) and Dramatiq's Redis
layout and scripts (dramatiq_redis.py). The one owner of everything Dramatiq-private;
tests/workers/transport/test_dramatiq_contract.py pins what it relies on."""
