"""``jobordre up``: the whole system in one process, with no service installed.

An in-process Redis (fakeredis's TCP server, with Lua for Dramatiq's scripts) listens on a
free loopback port; the workers run against it through the same RedisBroker code as in
production; the address goes to ``<JOBORDRE_HOME>/embedded.json`` so ``jobordre`` commands
in other terminals find it. The embedded broker keeps its queues in memory: on SIGTERM
``up`` first lets the queues drain (up to ``worker_shutdown_ms``), and a command whose
reply was lost can always be resent with the same command id (the ledger answers it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import redis
from fakeredis import TcpFakeServer

from shared.settings import Settings
from workers.broker import COMMANDS_QUEUE, QUERIES_QUEUE
from workers.runner import configure_logging, start_worker, wait_for_stop

logger = logging.getLogger("jobordre.up")

#: How often ``up`` checks whether the queues drained while stopping, in milliseconds.
DRAIN_POLL_MS = 100
#: Idle poll of ``up``'s workers unless JOBORDRE_WORKER_POLL_MS says otherwise, in ms. The
#: embedded broker runs Lua in Python, so the production default (10 ms) would cost an
#: idle laptop about 40% of a core; 100 ms costs about 10%, at ~50 ms more per round trip.
EMBEDDED_POLL_MS = 100


def _running_elsewhere(settings: Settings) -> str | None:
    """The URL of another live ``jobordre up`` for this home, if there is one."""
    try:
        address = json.loads(settings.embedded_address_file.read_text())
        os.kill(int(address["pid"]), 0)
        redis.Redis.from_url(address["redis_url"], socket_connect_timeout=1).ping()
    except (OSError, ValueError, KeyError, redis.RedisError):
        return None
    return str(address["redis_url"])


def start_embedded_broker() -> tuple[TcpFakeServer, str]:
    """Start the in-process Redis on a free loopback port; returns it and its URL."""
    server = TcpFakeServer(("127.0.0.1", 0))
    threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"redis://{host!s}:{port}/0"


def _drain(url: str, timeout_ms: int) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        waiting = sum(int(client.llen(f"dramatiq:{q}")) for q in (COMMANDS_QUEUE, QUERIES_QUEUE))
        if waiting == 0:
            return
        time.sleep(DRAIN_POLL_MS / 1000)
    logger.warning("stopping with messages still queued; their clients may resend them")


def run_up(settings: Settings) -> int:
    """Run broker and workers until SIGTERM/SIGINT; returns the exit code."""
    configure_logging()
    if "worker_poll_ms" not in settings.model_fields_set:
        settings = settings.model_copy(update={"worker_poll_ms": EMBEDDED_POLL_MS})
    other = _running_elsewhere(settings)
    if other is not None:
        logger.error("jobordre is already running for %s (broker %s)", settings.home, other)
        return 1
    settings.home.mkdir(parents=True, exist_ok=True)
    server, url = start_embedded_broker()
    worker = start_worker(settings, url, settings.worker_threads)
    address_file = settings.embedded_address_file
    temporary = address_file.with_suffix(".tmp")
    temporary.write_text(json.dumps({"redis_url": url, "pid": os.getpid()}))
    temporary.replace(address_file)
    logger.info("jobordre is up: broker %s, store %s", url, settings.db_path)
    print(f"jobordre is up (store {settings.db_path}); stop it with Ctrl+C", flush=True)

    def stop() -> None:
        address_file.unlink(missing_ok=True)
        _drain(url, settings.worker_shutdown_ms)
        worker.stop(timeout=settings.worker_shutdown_ms)
        server.shutdown()
        server.server_close()

    wait_for_stop(stop)
    return 0
