"""The notifier on a real Redis trusts no header it reads there, and can act on nothing.

A real redis-server, a real worker process and the real ``jobordre notifier --terminal``
process, signing with a key of scope ``notify``. Whoever can write to Redis can ``XADD`` a
header: one made up with the seq the next real change will have is neither shown nor makes
the notifier drop the real change as a duplicate.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from notifier.cursor import CursorFile
from shared.events import AUTHORITIES, EventHeader, Wake, audience_stream_key, stream_key
from shared.settings import Settings
from tests.conftest import JOBORDRE, System, wait_until
from tests.factories import order_doc

pytestmark = pytest.mark.integration

KBH = "jobcentre:101"
CASEWORKER = "kw9"
TITLE = "Social- og sundhedsassistent til Amager"


class TerminalNotifier:
    """``jobordre notifier --terminal`` of one caseworker in a home of its own."""

    def __init__(self, system: System, home: Path, key: Path) -> None:
        self.home = home
        self.log = home / "notifier.log"
        command = [str(JOBORDRE), "notifier", "--terminal", "-v"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "--caseworker", CASEWORKER, "--as", KBH],
                env=system.env(JOBORDRE_HOME=str(home), JOBORDRE_KEY_FILE=str(key)),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: self.process.poll() is not None or "watching for changes" in self.output(),
            30,
            "the notifier to start",
        )
        assert self.process.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def cursor(self) -> Any:
        return CursorFile.for_caseworker(self.home, KBH, CASEWORKER).load()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


@pytest.fixture
def order_id(system: System, tmp_path: Path) -> int:
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order_doc(title=TITLE)))
    order: dict[str, Any] = system.json("order", "register", "--file", str(path), "--as", KBH)
    system.json("follow", str(order["id"]), "--caseworker", CASEWORKER, "--as", KBH)
    return int(order["id"])


@pytest.fixture
def notifier(system: System, order_id: int, tmp_path: Path) -> Any:
    home = tmp_path / "desktop-home"
    home.mkdir()
    key = tmp_path / "notify.key"
    system.notify_key(KBH, CASEWORKER, key)
    running = TerminalNotifier(system, home, key)
    yield running
    running.stop()


def test_the_notifier_runs_on_a_notify_key_and_shows_a_change(
    system: System, order_id: int, notifier: TerminalNotifier
) -> None:
    system.json("order", "status", str(order_id), "inactivated", "--as", KBH)
    wait_until(lambda: "Inaktiveret" in notifier.output(), 30, "the change on the terminal")
    assert f"Jobordre {order_id}: {TITLE}" in notifier.output()
    assert "forbidden" not in notifier.output()


def test_a_forged_header_is_not_shown_and_does_not_hide_the_real_change(
    system: System, order_id: int, notifier: TerminalNotifier
) -> None:
    cursor = notifier.cursor()
    forged = EventHeader(
        id="forged",
        seq=cursor.seq + 1,
        epoch=cursor.epoch or "",
        type="order_status_changed",
        at="2026-12-07T12:00:00+00:00",
        order_id=order_id,
        title=TITLE,
        status="closed_filled",
        previous_status="processing",
        version=99,
        processing_by=[],
        employer_cvr=order_doc()["employer"]["cvr"],
        by=KBH,
        audience=[AUTHORITIES],
    )
    # On every stream a reader could trust: the whole header on the shared one, and the
    # wake-up on the organisation's own and on the authorities' stream.
    prefix = Settings().redis_prefix
    wake = {"wake": Wake(forged.id, forged.seq, forged.epoch).to_json()}
    redis = system.redis.client()
    redis.xadd(stream_key(prefix), {"event": forged.model_dump_json()})
    redis.xadd(audience_stream_key(prefix, KBH), wake)
    redis.xadd(audience_stream_key(prefix, AUTHORITIES), wake)
    redis.close()
    # The notifier reads the forged header and asks the inbox, which lists nothing new.
    woken = f"woken after event {cursor.seq}; asking the inbox"
    wait_until(lambda: woken in notifier.output(), 30, "the notifier to read the forged header")
    system.json("order", "status", str(order_id), "inactivated", "--as", KBH)
    wait_until(lambda: "Inaktiveret" in notifier.output(), 30, "the real change on the terminal")
    assert "Lukket" not in notifier.output()
    assert "Afsluttet" not in notifier.output()
    assert notifier.output().count(f"Jobordre {order_id}: {TITLE}") == 1
