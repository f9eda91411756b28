"""Drawing ``jobordre queues`` for people: rich tables, and ``--watch`` live with sparklines."""

from __future__ import annotations

import io
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

#: Sparkline glyphs, lowest to highest.
BARS = "▁▂▃▄▅▆▇█"
#: Depth samples kept for the sparkline (one per redraw).
HISTORY = 30


def sparkline(values: Sequence[float]) -> str:
    """A one-line chart of ``values`` scaled to their maximum; blank bars for zero."""
    top = max(values, default=0)
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(int(v / top * (len(BARS) - 1) + 0.5), len(BARS) - 1)] for v in values)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def render(snapshot: dict[str, Any], depth: dict[str, deque[int]] | None = None) -> RenderableType:
    """The queues, jobs and workers tables of one snapshot (with depth trends if given)."""
    at = datetime.fromtimestamp(snapshot["at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    queues = Table(title=f"jobordre queues — {at}", title_justify="left", expand=False)
    queues.add_column("queue", no_wrap=True, min_width=len("jobordre.commands"))
    for name in ("ready", "delayed", "in flight", "dead XQ/db", "oldest"):
        queues.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    if depth is not None:
        queues.add_column("depth trend", no_wrap=True)
    for q in snapshot["queues"]:
        row = [
            q["name"],
            str(q["ready"]),
            str(q["delayed"]),
            str(q["in_flight"]),
            f"{q['dead_broker']}/{'?' if q['dead_store'] is None else q['dead_store']}",
            _age(q["oldest_age_s"]),
        ]
        if depth is not None:
            row.append(sparkline(list(depth[q["name"]])))
        queues.add_row(*row)

    windows = snapshot["windows_s"]
    jobs = Table(
        title=f"jobs — per {windows['per_minute']} s; p50/p95 over "
        f"{windows['percentiles'] // 60} min",
        title_justify="left",
    )
    jobs.add_column("kind", no_wrap=True)
    for name in ("done/min", "failed/min", "p50 ms", "p95 ms", "samples"):
        jobs.add_column(name, justify="right", no_wrap=True)
    for j in snapshot["jobs"]:
        failed = Text(str(j["failed_last_minute"]), style="red" if j["failed_last_minute"] else "")
        jobs.add_row(
            j["kind"],
            str(j["done_last_minute"]),
            failed,
            _ms(j["p50_ms"]),
            _ms(j["p95_ms"]),
            str(j["samples"]),
        )
    throughput = snapshot["throughput"]
    done = throughput["done"]
    trend = Text(
        f"done per {throughput['bucket_s']} s, last {len(done)} buckets: "
        f"{sparkline(done)} (now {done[-1] if done else 0})"
    )

    workers = Table(title="workers", title_justify="left")
    for name in ("host", "pid", "threads", "state", "last heartbeat", "in flight", "running"):
        workers.add_column(name, justify="left" if name in ("host", "state") else "right")
    for w in snapshot["workers"]:
        workers.add_row(
            w["host"],
            str(w["pid"]),
            str(w["threads"]),
            Text("alive", style="green") if w["alive"] else Text("DEAD", style="bold red"),
            f"{_age(w['heartbeat_age_s'])} ago",
            str(w["in_flight"]),
            str(w["running"]),
        )
    if not snapshot["workers"]:
        workers.add_row("(no workers)", "", "", Text("none", style="bold red"), "", "", "")
    return Group(queues, jobs, trend, workers)


def watch(
    take: Callable[[], dict[str, Any]],
    *,
    interval_s: float,
    count: int | None = None,
    console: Console | None = None,
) -> RenderableType:
    """Redraw every ``interval_s`` until Ctrl+C (or ``count`` redraws); returns the last frame."""
    depth: dict[str, deque[int]] = {}

    def frame() -> RenderableType:
        snapshot = take()
        for q in snapshot["queues"]:
            depth.setdefault(q["name"], deque(maxlen=HISTORY)).append(
                q["ready"] + q["delayed"] + q["in_flight"]
            )
        return render(snapshot, depth)

    last = frame()
    with Live(last, console=console, refresh_per_second=4, screen=False) as live:
        drawn = 1
        try:
            while count is None or drawn < count:
                time.sleep(interval_s)
                last = frame()
                live.update(last)
                drawn += 1
        except KeyboardInterrupt:
            pass
    return last


def save_svg(frame: RenderableType, path: str, width: int = 100) -> None:
    """Write ``frame`` as an SVG picture of a terminal (for docs and bug reports)."""
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(frame)
    console.save_svg(path, title="jobordre queues --watch")
