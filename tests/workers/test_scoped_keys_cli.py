"""``jobordre keys create --scope notify``: the desktop notifier's key, through the CLI.

A real redis-server and a real worker process. The operator makes a key bound to one
caseworker; with it the caseworker's notifier runs and shows a change, and every other
command signed with it is ``forbidden`` (exit code 3), with nothing read or changed.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JOBORDRE, System, wait_until
from tests.factories import CPR_1, order_doc

pytestmark = pytest.mark.integration

KBH = "jobcentre:101"
CASEWORKER = "kw7"
TITLE = "Pædagogmedhjælper til Valby"


@pytest.fixture(scope="module")
def order_id(system: System, tmp_path_factory: pytest.TempPathFactory) -> int:
    path = tmp_path_factory.mktemp("scoped") / "order.json"
    path.write_text(json.dumps(order_doc(title=TITLE)))
    order: dict[str, Any] = system.json("order", "register", "--file", str(path), "--as", KBH)
    system.json("placement", "register", str(order["id"]), "--cpr", "-", "--as", KBH, stdin=CPR_1)
    system.json("follow", str(order["id"]), "--caseworker", CASEWORKER, "--as", KBH)
    return int(order["id"])


@pytest.fixture(scope="module")
def notify_key(system: System, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("desktop") / "notify.key"
    made = system.json(
        "keys", "create", KBH, "--scope", "notify", "--caseworker", CASEWORKER, "--out", str(path)
    )
    assert (made["scope"], made["caseworker"], made["file"]) == ("notify", CASEWORKER, str(path))
    listed = system.json("keys", "list", KBH)["keys"]
    assert {(k["key_id"], k["scope"]) for k in listed} >= {(made["key_id"], "notify")}
    return path


def with_key(system: System, key: Path, *args: str) -> Any:
    return system.cli(*args, "--as", KBH, "--json", JOBORDRE_KEY_FILE=str(key))


def test_the_notify_key_reads_the_follows_and_the_inbox_headers(
    system: System, order_id: int, notify_key: Path
) -> None:
    following = with_key(system, notify_key, "following", "--caseworker", CASEWORKER)
    assert following.code == 0, following.err
    assert json.loads(following.out)["orders"] == [order_id]
    headers = with_key(system, notify_key, "inbox", "--headers-only", "--caseworker", CASEWORKER)
    assert headers.code == 0, headers.err
    assert order_id in {e["order_id"] for e in json.loads(headers.out)["events"]}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("inbox", "--caseworker", CASEWORKER), id="inbox-with-orders"),
        pytest.param(("following", "--caseworker", "someone-else"), id="another-caseworker"),
        pytest.param(("order", "search", "--caseworker", CASEWORKER), id="search"),
        pytest.param(("order", "get", "{id}", "--caseworker", CASEWORKER), id="get-order"),
        pytest.param(("placement", "log", "{id}", "--caseworker", CASEWORKER), id="log"),
        pytest.param(
            ("order", "status", "{id}", "inactivated", "--caseworker", CASEWORKER), id="status"
        ),
    ],
)
def test_anything_else_with_the_notify_key_is_forbidden(
    system: System, order_id: int, notify_key: Path, args: tuple[str, ...]
) -> None:
    refused = with_key(system, notify_key, *(a.format(id=order_id) for a in args))
    assert refused.code == 3, refused.out + refused.err
    assert json.loads(refused.out)["error"]["code"] == "forbidden"
    assert CPR_1 not in refused.out + refused.err
    order = system.json("order", "get", str(order_id), "--as", KBH)
    assert order["status"] == "processing"


def test_the_notifier_runs_on_the_notify_key_and_shows_a_change(
    system: System, order_id: int, notify_key: Path, tmp_path: Path
) -> None:
    home = tmp_path / "desktop-home"
    home.mkdir()
    log = home / "notifier.log"
    with log.open("wb") as out:
        notifier = subprocess.Popen(
            [
                str(JOBORDRE),
                "notifier",
                "--terminal",
                "-v",
                "--caseworker",
                CASEWORKER,
                "--as",
                KBH,
            ],
            env=system.env(JOBORDRE_HOME=str(home), JOBORDRE_KEY_FILE=str(notify_key)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: notifier.poll() is not None or "watching for changes" in log.read_text(),
            30,
            "the notifier to start",
        )
        assert notifier.poll() is None, log.read_text()
        system.json("order", "status", str(order_id), "inactivated", "--as", KBH)
        wait_until(lambda: "Inaktiveret" in log.read_text(), 30, "the change on the terminal")
        system.json("order", "status", str(order_id), "processing", "--as", KBH)
    finally:
        notifier.send_signal(signal.SIGTERM)
        notifier.wait(30)
    output = log.read_text()
    assert f"Jobordre {order_id}: {TITLE}" in output
    assert "forbidden" not in output
