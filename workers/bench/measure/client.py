"""CPU the client spends per command without Redis: building a send, and opening a reply.

Run: ``.venv/bin/python -m workers.bench.measure.client [--rounds 15] [--commands 2000]``.
Not a test (pytest does not collect it: its name does not start with ``test_``).

A send is what :meth:`workers.client.Client.send` does before the broker's round trip:
:func:`shared.envelope.new_envelope` (seal the CPR, validate, sign), ``to_json``, the
``dramatiq.Message`` and its ``encode``. Opening is :func:`shared.sealing.open_reply` on a
reply sealed by :func:`shared.sealing.seal_reply`, after ``json.loads`` of the wire text as
:func:`workers.client.replies.wait_reply` does. The configurations run in one process,
interleaved round by round in a new random order each round, so drift on a shared machine hits them
alike: ``before`` undoes every step the way the code did it before, ``after`` is the code
as it is (no step changes how a reply is opened: its two figures show the noise). Each
figure is ms of CPU (:func:`time.process_time`) per command, median over the rounds, for
placements (a CPR to seal), status changes and updates.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from shared import envelope as envelope_module
from shared import signing
from shared.commands import CommandKind
from shared.envelope import Envelope, new_envelope
from shared.sealing import open_reply, seal_reply
from shared.signing import SigningKey
from workers.bench.generator import Generator
from workers.bench.measure.no_work_twice import _patched
from workers.client.client import command_message

PRINCIPAL = "jobcentre:101"


def _dumped(envelope: Envelope) -> dict[str, Any]:
    return envelope.model_dump(mode="json")


def _canonical_dumps(fields: dict[str, Any]) -> bytes:
    signed = {name: value for name, value in fields.items() if name != "signature"}
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


#: Each step, and how to undo it (as the code was before it).
UNDO: dict[str, Callable[[], Any]] = {
    "signed_by_hand": lambda: _patched(envelope_module, "signed_fields", _dumped),
    "principal_cached": lambda: _patched(
        envelope_module, "normalized_principal", envelope_module.normalized_principal.__wrapped__
    ),
    "one_canonical_encoder": lambda: _patched(signing, "canonical", _canonical_dumps),
}
CONFIGURATIONS = ("before", "after")


@contextmanager
def _configured(name: str) -> Iterator[None]:
    with ExitStack() as stack:
        if name == "before":
            for undo in UNDO.values():
                stack.enter_context(undo())
        yield


def _payloads(kind: CommandKind, count: int) -> list[dict[str, Any]]:
    generator = Generator(9)
    if kind is CommandKind.REGISTER_PLACEMENT:
        return [generator.placement(order_id) for order_id in range(1, count + 1)]
    if kind is CommandKind.CHANGE_ORDER_STATUS:
        return [{"order_id": order_id, "status": "inactivated"} for order_id in range(count)]
    return [
        {"order_id": order_id, "expected_version": 2, "patch": {"positions": 3}}
        for order_id in range(count)
    ]


def _send_ms(kind: CommandKind, payloads: list[dict[str, Any]], key: SigningKey) -> float:
    """ms of CPU per send: envelope, its JSON, the Dramatiq message and its encoding."""
    started = time.process_time()
    for payload in payloads:
        command_message(
            new_envelope(kind, PRINCIPAL, payload, caseworker="mette", key=key)
        ).encode()
    return (time.process_time() - started) * 1000 / len(payloads)


def _open_ms(count: int, key: SigningKey) -> float:
    """ms of CPU per reply opened: the wire text decoded and the reply checked and opened."""
    envelope = new_envelope(
        CommandKind.REGISTER_PLACEMENT, PRINCIPAL, Generator(9).placement(1), key=key
    )
    assert envelope.signature is not None
    result = {"order_id": 1, "placement_id": 17, "active_referrals": 2}
    reply = {"command_id": envelope.command_id, "ok": True, "result": result}
    text = json.dumps(seal_reply(reply, key, envelope.signature))
    started = time.process_time()
    for _ in range(count):
        opened = open_reply(json.loads(text), key, envelope.command_id, envelope.signature)
    assert opened is not None
    assert opened["result"] == result
    return (time.process_time() - started) * 1000 / count


def main() -> None:
    """Print one JSON document: median ms of CPU per command by kind and configuration."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    key = SigningKey.generate(PRINCIPAL)
    kinds = (
        CommandKind.REGISTER_PLACEMENT,
        CommandKind.CHANGE_ORDER_STATUS,
        CommandKind.UPDATE_ORDER,
    )
    payloads = {kind: _payloads(kind, args.commands) for kind in kinds}
    runs: dict[str, dict[str, list[float]]] = {
        name: {configuration: [] for configuration in CONFIGURATIONS}
        for name in [*(f"send {kind.value}" for kind in kinds), "open reply"]
    }
    for _ in range(args.rounds):
        order = [(name, configuration) for name in runs for configuration in CONFIGURATIONS]
        random.shuffle(order)
        for name, configuration in order:
            with _configured(configuration):
                if name == "open reply":
                    figure = _open_ms(args.commands, key)
                else:
                    kind = CommandKind(name.removeprefix("send "))
                    figure = _send_ms(kind, payloads[kind], key)
            runs[name][configuration].append(figure)
    figures = {
        name: {
            configuration: round(statistics.median(values), 4)
            for configuration, values in configurations.items()
        }
        for name, configurations in runs.items()
    }
    print(json.dumps({"rounds": args.rounds, "commands": args.commands, **figures}, indent=1))


if __name__ == "__main__":
    main()
