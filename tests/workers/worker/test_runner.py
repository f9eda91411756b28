"""A worker process started as ``jobordre worker`` and ``jobordre up`` start one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import RedisServer

#: Starts a worker in a process of its own (its background loops stay there) and says
#: whether Dramatiq's job time limit is watched in it.
PROBE = """
import os
from dramatiq.middleware import TimeLimit
from shared.settings import Settings
from workers.worker.runner import start_worker

settings = Settings()
worker = start_worker(settings, settings.redis_url, 1)
[limit] = [m for m in worker.broker.middleware if isinstance(m, TimeLimit)]
print("watched" if limit.manager.is_alive() else "not watched", flush=True)
worker.stop(timeout=5_000)
os._exit(0)
"""


def test_a_started_worker_enforces_the_job_time_limit(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={
            "JOBORDRE_HOME": str(tmp_path),
            "JOBORDRE_REDIS_URL": private_redis.url,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "watched", done.stdout + done.stderr
