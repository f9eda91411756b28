"""Measure the notifier as a desktop program, and take the docs' screenshots of its tray.

Run: ``.venv/bin/python -m workers.bench.measure.notifier_desktop [--idle-s 60] [--samples 10]
[--screenshots docs]``. It starts what the desktop tests start (a private redis-server, one
worker process, Xvfb + a private D-Bus + dunst + trayer, and the real ``jobordre notifier``
with its tray icon), then:

* idle CPU and memory: the notifier's CPU time (``/proc/<pid>/stat`` user + system) over
  ``--idle-s`` seconds with nothing happening, as a share of one core, and its resident
  and proportional memory (``VmRSS``, ``Pss`` of ``smaps_rollup``), highest of one sample
  a second; once with the tray icon and once with ``--no-tray``;
* change → screen latency with the tray icon: as ``notifier_latency`` does (command sent /
  committed → dunst's own timestamp of the notification).

Not a test: figures are reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from shared.commands import CommandKind
from shared.settings import Settings
from tests.conftest import JOBORDRE, System, start_redis, wait_until
from tests.factories import order_doc
from tests.notifier.conftest import Desktop, start_desktop
from tests.notifier.tray_host import TRAY_HEIGHT_PX, TRAY_WIDTH_PX, Tray, start_tray
from workers.bench.measure.notifier_latency import _summary, time_changes
from workers.client import Client

KBH = "jobcentre:101"
AARHUS = "jobcentre:751"
SCREEN_W, SCREEN_H = 1024, 600


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memory_kb(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss = int(next(line for line in rollup.splitlines() if line.startswith("Pss:")).split()[1])
    return rss, pss


def _idle(pid: int, seconds: float) -> dict[str, float]:
    """CPU share of one core and highest memory of ``pid`` over ``seconds``."""
    rss_max = pss_max = 0
    start_cpu, start = _cpu_s(pid), time.monotonic()
    while time.monotonic() - start < seconds:
        rss, pss = _memory_kb(pid)
        rss_max, pss_max = max(rss_max, rss), max(pss_max, pss)
        time.sleep(1)
    cpu = _cpu_s(pid) - start_cpu
    elapsed = time.monotonic() - start
    return {
        "seconds": round(elapsed, 1),
        "cpu_percent_of_one_core": round(100 * cpu / elapsed, 3),
        "rss_mb_max": round(rss_max / 1024, 1),
        "pss_mb_max": round(pss_max / 1024, 1),
    }


def _start_notifier(
    system: System, desktop: Desktop, home: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(JOBORDRE), "notifier", "--caseworker", "kf1", "--as", AARHUS, "-v", *extra],
            env=system.env(
                **desktop.env,
                JOBORDRE_HOME=str(home),
                JOBORDRE_ORDER_URL="https://fagsystem.example/jobordre/{id}",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: b"watching for changes" in log.read_bytes(), 30, "the notifier")
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(30)


def _enlarged(path: Path, factor: int) -> None:
    """Scale a screenshot up by ``factor`` (nearest neighbour: the pixels stay as shown)."""
    from PIL import Image

    with Image.open(path) as image:
        large = image.resize(
            (image.width * factor, image.height * factor), Image.Resampling.NEAREST
        )
    large.save(path)


def _screenshots(tray: Tray, folder: Path) -> list[str]:
    """The tray with the icon connected and paused (enlarged 3x), the menu opened from it,
    and an order's submenu."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DISPLAY": tray.display}
    tray.wait_state("forbundet")
    # The pointer away from the menu, so no row is highlighted by accident.
    subprocess.run(["xdotool", "mousemove", "10", "10"], env=env, check=True)
    time.sleep(0.5)
    left = SCREEN_W - TRAY_WIDTH_PX - 20
    # The icon's end of the tray (the rest of it is empty).
    tray_box = (SCREEN_W - 72, SCREEN_H - TRAY_HEIGHT_PX - 8, SCREEN_W, SCREEN_H)
    tray.screenshot(folder / "notifier-tray.png", tray_box)
    _enlarged(folder / "notifier-tray.png", 3)
    menu = tray.open_menu()
    subprocess.run(["xdotool", "mousemove", "10", "10"], env=env, check=True)
    time.sleep(0.4)
    box = (min(menu.x, left) - 20, menu.y - 20, SCREEN_W, SCREEN_H)
    tray.screenshot(folder / "notifier-tray-menu.png", box)
    submenu = tray.choose(menu, 1)
    time.sleep(0.4)
    tray.screenshot(folder / "notifier-tray-submenu.png", box)
    subprocess.run(["xdotool", "key", "Escape"], env=env, check=True)
    time.sleep(0.3)
    tray.choose(tray.open_menu(), 2)  # "Pause i 1 time"
    tray.wait_state("på pause")
    subprocess.run(["xdotool", "mousemove", "10", "10"], env=env, check=True)
    time.sleep(0.5)
    tray.screenshot(folder / "notifier-tray-paused.png", tray_box)
    _enlarged(folder / "notifier-tray-paused.png", 3)
    tray.choose(tray.open_menu(), 2)  # "Genoptag"
    tray.wait_state("forbundet")
    assert submenu.height < menu.height
    return [
        "notifier-tray.png",
        "notifier-tray-paused.png",
        "notifier-tray-menu.png",
        "notifier-tray-submenu.png",
    ]


def main() -> None:
    """Run the measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle-s", type=float, default=60)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--screenshots", type=Path, help="folder for the tray's screenshots")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="jobordre-desktop-"))
    redis_server = start_redis(work / "redis")
    system = System(redis_server, work / "home")
    system.home.mkdir()
    desktop = start_desktop(work)
    tray: Tray | None = None
    notifier: subprocess.Popen[bytes] | None = None
    report: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%F")}
    try:
        desktop.start_dunst()
        tray = start_tray(desktop.display, work)
        system.start_worker(threads=4)
        settings = Settings(
            home=system.home, db=system.db, redis_url=redis_server.url, reply_timeout_ms=20_000
        )
        kbh = Client(settings, KBH)
        aarhus = Client(settings, AARHUS, caseworker="kf1")
        title = "Lagermedarbejder til Aarhus Havn"
        order = kbh.call(CommandKind.REGISTER_ORDER, {"order": order_doc(title=title)})
        aarhus.call(CommandKind.FOLLOW, {"caseworker": "kf1", "order_id": order["id"]})

        for name, extra in (("without_tray", ("--no-tray",)), ("with_tray", ())):
            home = work / f"desktop-{name}"
            notifier = _start_notifier(system, desktop, home, work / f"{name}.log", *extra)
            if extra == ():
                tray.wait_state("forbundet")
            time.sleep(5)  # past start-up
            report[f"idle_{name}"] = _idle(notifier.pid, args.idle_s)
            if name == "with_tray":
                break
            _stop(notifier)
            notifier = None

        assert notifier is not None
        if args.screenshots is not None:
            report["screenshots"] = _screenshots(tray, args.screenshots)

        desktop.forget()
        # Past the default burst window: each change its own notification.
        from_send, from_commit = time_changes(kbh, order["id"], desktop, args.samples, 3.5)
        report["latency_with_tray"] = {
            "samples": args.samples,
            "command sent -> on screen, ms": _summary(from_send),
            "committed -> on screen, ms": _summary(from_commit),
        }
        print(json.dumps(report, ensure_ascii=False, indent=2))
        kbh.close()
        aarhus.close()
    finally:
        if notifier is not None:
            _stop(notifier)
        system.stop_workers()
        if tray is not None:
            tray.stop()
        desktop.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
