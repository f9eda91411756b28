"""Job throughput and durations, recorded by each worker in Redis in 10-second buckets.

Per bucket, one hash ``<prefix>:ops:stats:<bucket>`` counts ``done|<kind>`` and
``failed|<kind>``, and one list per kind ``<prefix>:ops:durations:<bucket>:<kind>`` keeps
the durations in milliseconds (the last :data:`MAX_SAMPLES` of the bucket). Workers keep
the figures in memory and write them once a second in one pipeline, so a job costs no
Redis round trip; every key expires after :data:`KEEP_S`. A SIGKILLed worker loses at most
its last second of figures.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

#: Width of one bucket, in seconds.
BUCKET_S = 10
#: How long buckets are kept, in seconds.
KEEP_S = 3600
#: Durations kept per bucket and kind; beyond it the newest are kept.
MAX_SAMPLES = 2000
#: Window of the per-minute figures, in seconds.
MINUTE_S = 60
#: Window of the duration percentiles, in seconds ("the last minutes").
PERCENTILE_WINDOW_S = 300


def bucket_of(at_s: float) -> int:
    """The start of the bucket ``at_s`` falls in, in seconds since the epoch."""
    return int(at_s) // BUCKET_S * BUCKET_S


def stats_key(prefix: str, bucket: int) -> str:
    """The counters of one bucket."""
    return f"{prefix}:ops:stats:{bucket}"


def durations_key(prefix: str, bucket: int, kind: str) -> str:
    """The durations of one kind in one bucket."""
    return f"{prefix}:ops:durations:{bucket}:{kind}"


@dataclass
class JobStats:
    """The figures of one worker process not yet written to Redis."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counts: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    _durations: dict[tuple[int, str], list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def record(self, kind: str, ok: bool, duration_ms: float, at_s: float | None = None) -> None:
        """Count one finished job (``ok``: it returned; else it raised)."""
        bucket = bucket_of(time.time() if at_s is None else at_s)
        with self._lock:
            self._counts[(bucket, f"{'done' if ok else 'failed'}|{kind}")] += 1
            self._durations[(bucket, kind)].append(round(duration_ms, 3))

    def flush(self, client: redis.Redis, prefix: str) -> None:
        """Write what was recorded since the last flush; kept for the next one on failure."""
        with self._lock:
            counts, self._counts = self._counts, defaultdict(int)
            durations, self._durations = self._durations, defaultdict(list)
        if not counts and not durations:
            return
        pipe = client.pipeline(transaction=False)
        for (bucket, name), n in counts.items():
            key = stats_key(prefix, bucket)
            pipe.hincrby(key, name, n)
            pipe.expire(key, KEEP_S)
        for (bucket, kind), values in durations.items():
            key = durations_key(prefix, bucket, kind)
            pipe.rpush(key, *values)
            pipe.ltrim(key, -MAX_SAMPLES, -1)
            pipe.expire(key, KEEP_S)
        try:
            pipe.execute()
        except redis.RedisError:
            with self._lock:  # put them back: the next flush tries again
                for item, n in counts.items():
                    self._counts[item] += n
                for item, values in durations.items():
                    self._durations[item][:0] = values
            raise


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    # Inclusive method: p50 of [1, 2, 3] is 2 and p95 never exceeds the largest value.
    cut = statistics.quantiles(values, n=100, method="inclusive")
    return round(cut[int(fraction * 100) - 1], 3)


def read_stats(client: redis.Redis, prefix: str, now_s: float | None = None) -> dict[str, Any]:
    """Done and failed in the last minute, p50/p95 over the last 5 minutes, per job kind.

    Also ``throughput``: jobs done per bucket over the last :data:`PERCENTILE_WINDOW_S`,
    oldest first, for a sparkline.
    """
    now = time.time() if now_s is None else now_s
    newest = bucket_of(now)
    buckets = [newest - i * BUCKET_S for i in range(PERCENTILE_WINDOW_S // BUCKET_S)]
    pipe = client.pipeline(transaction=False)
    for bucket in buckets:
        pipe.hgetall(stats_key(prefix, bucket))
    counters: list[dict[bytes, bytes]] = pipe.execute()
    kinds = sorted(
        {name.decode().split("|", 1)[1] for bucket_counts in counters for name in bucket_counts}
    )
    pipe = client.pipeline(transaction=False)
    for kind in kinds:
        for bucket in buckets:
            pipe.lrange(durations_key(prefix, bucket, kind), 0, -1)
    samples = pipe.execute()
    jobs = []
    minute_buckets = MINUTE_S // BUCKET_S
    for i, kind in enumerate(kinds):
        values = [
            float(v) for chunk in samples[i * len(buckets) : (i + 1) * len(buckets)] for v in chunk
        ]
        recent = counters[:minute_buckets]
        jobs.append(
            {
                "kind": kind,
                "done_last_minute": sum(int(c.get(f"done|{kind}".encode(), 0)) for c in recent),
                "failed_last_minute": sum(int(c.get(f"failed|{kind}".encode(), 0)) for c in recent),
                "samples": len(values),
                "p50_ms": _percentile(values, 0.50),
                "p95_ms": _percentile(values, 0.95),
            }
        )
    throughput = [
        sum(int(n) for name, n in c.items() if name.startswith(b"done|")) for c in counters
    ]
    return {
        "window_s": {"per_minute": MINUTE_S, "percentiles": PERCENTILE_WINDOW_S},
        "bucket_s": BUCKET_S,
        "jobs": jobs,
        "throughput": list(reversed(throughput)),
    }
