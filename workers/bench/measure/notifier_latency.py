"""Measure change → screen latency of the notifier, and take the README's screenshot.

Run: ``.venv/bin/python -m workers.bench.measure.notifier_latency [--samples 20] [--quiet-ms 300]
[--screenshot docs/notification.png]``. It starts what the end-to-end tests start (a private
redis-server, one worker process, Xvfb + a private D-Bus + dunst, and the real ``jobordre
notifier``), then changes a followed order's status ``--samples`` times, each after the
burst window, and times each change from the moment the command is sent and from its
commit (the order's ``updated_at``) to the moment dunst received the notification (dunst's
own timestamp, on the same monotonic clock). Not a test: timing is reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from shared.commands import CommandKind
from shared.settings import Settings
from tests.conftest import JOBORDRE, System, start_redis, wait_until
from tests.factories import CPR_1, order_doc
from tests.notifier.conftest import Desktop, start_desktop
from workers.client import Client

KBH = "jobcentre:101"
AARHUS = "jobcentre:751"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--quiet-ms", type=int, default=300)
    parser.add_argument("--burst-ms", type=int, default=3000)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of one notification")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="jobordre-latency-"))
    redis_server = start_redis(work / "redis")
    system = System(redis_server, work / "home")
    system.home.mkdir()
    desktop = start_desktop(work)
    notifier: subprocess.Popen[bytes] | None = None
    try:
        desktop.start_dunst()
        system.start_worker(threads=4)
        settings = Settings(
            home=system.home, db=system.db, redis_url=redis_server.url, reply_timeout_ms=20_000
        )
        kbh = Client(settings, KBH)
        aarhus = Client(settings, AARHUS, caseworker="kf1")
        title = "Lagermedarbejder til Aarhus Havn"
        order = kbh.call(CommandKind.REGISTER_ORDER, {"order": order_doc(title=title)})
        aarhus.call(CommandKind.FOLLOW, {"caseworker": "kf1", "order_id": order["id"]})
        log = work / "notifier.log"
        with log.open("wb") as out:
            notifier = subprocess.Popen(
                [str(JOBORDRE), "notifier", "--caseworker", "kf1", "--as", AARHUS, "-v"],
                env=system.env(
                    **desktop.env,
                    JOBORDRE_HOME=str(work / "desktop-home"),
                    JOBORDRE_NOTIFIER_QUIET_MS=str(args.quiet_ms),
                    JOBORDRE_NOTIFIER_BURST_MS=str(args.burst_ms),
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: b"watching for changes" in log.read_bytes(), 30, "the notifier")
        desktop.forget()
        if args.screenshot is not None:
            aarhus.call(CommandKind.REGISTER_PLACEMENT, {"order_id": order["id"], "cpr": CPR_1})
            time.sleep(1.5)  # shown and drawn; history() below would close it
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            # dunst draws in the top right corner of the 1024x600 screen.
            subprocess.run(
                [
                    "/usr/bin/import",
                    "-display",
                    desktop.display,
                    "-window",
                    "root",
                    "-crop",
                    "620x100+404+0",
                    str(args.screenshot),
                ],
                check=True,
            )
            desktop.forget()

        from_send, from_commit = time_changes(
            kbh, order["id"], desktop, args.samples, args.burst_ms / 1000 + 0.5
        )
        report = {
            "samples": args.samples,
            "quiet_ms": args.quiet_ms,
            "command sent -> on screen, ms": _summary(from_send),
            "committed -> on screen, ms": _summary(from_commit),
            "texts": [(i["summary"], i["body"]) for i in desktop.history()[:2]],
        }
        print(json.dumps(report, ensure_ascii=False, indent=2))
        kbh.close()
        aarhus.close()
    finally:
        if notifier is not None:
            notifier.terminate()
            notifier.wait(30)
        system.stop_workers()
        desktop.stop()
        redis_server.stop()


def time_changes(
    client: Client, order_id: int, desktop: Desktop, samples: int, pause_s: float
) -> tuple[list[float], list[float]]:
    """Change the order's status ``samples`` times, ``pause_s`` apart (each change its own
    notification); for each, ms from the command sent and from its commit to dunst's own
    timestamp of the notification."""
    from_send: list[float] = []
    from_commit: list[float] = []
    statuses = ["inactivated", "processing"]
    for i in range(samples):
        time.sleep(pause_s)
        offset = time.time() - time.monotonic()
        sent = time.time()
        changed = client.call(
            CommandKind.CHANGE_ORDER_STATUS, {"order_id": order_id, "status": statuses[i % 2]}
        )
        committed = datetime.fromisoformat(changed["updated_at"]).timestamp()
        items = wait_until(lambda n=i + 1: len(h := desktop.history()) >= n and h, 30, "it")
        shown = items[i]["timestamp"] / 1e6 + offset  # dunst: monotonic microseconds
        from_send.append((shown - sent) * 1000)
        from_commit.append((shown - committed) * 1000)
    return from_send, from_commit


def _summary(values: list[float]) -> dict[str, float | list[int]]:
    return {
        "p50": round(statistics.median(values), 1),
        "p95": round(_percentile(values, 0.95), 1),
        "max": round(max(values), 1),
        "min": round(min(values), 1),
        "all": [round(v) for v in values],
    }


if __name__ == "__main__":
    main()
