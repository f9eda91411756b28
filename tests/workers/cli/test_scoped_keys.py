"""``jobordre keys create --scope notify``: the desktop notifier's key, through the CLI.

A real redis-server and a real worker process. The operator makes a key bound to one
caseworker; with it the caseworker's follows and inbox headers are read, and every other
command signed with it is ``forbidden`` (exit code 3), with nothing read or changed. The
notifier running on such a key: ``tests/notifier/test_untrusted_stream.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import System
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
    made = system.notify_key(KBH, CASEWORKER, path)
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
