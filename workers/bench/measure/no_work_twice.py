"""What each "no work twice" step buys, measured in one process with the steps switched off.

Run: ``.venv/bin/python -m workers.bench.measure.no_work_twice [--rounds 15] [--commands 300]
[--folder /dev/shm]``. On a shared machine, runs of different checkouts drift by more than
a step buys; here every configuration runs in the same process, interleaved round by round
on fresh copies of one store, in a new random order each round, so drift hits them alike.
The configurations are cumulative: ``before`` (every step undone the way the code did it
before), then each step switched back on in turn, ``derived_once`` being the code as it is.
Each figure is ms of CPU (:func:`time.process_time`) per command, decode to sealed reply
(see :mod:`workers.bench.measure.write_path`), median over the rounds. Not a test.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from shared import eventlog, keys, sealing
from shared.commands import CommandKind
from shared.models import JobOrder
from workers.bench.generator import load_orders
from workers.bench.measure import write_path as measure_write_path


@contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    original = owner.__dict__[name]
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _validated(cls: type[JobOrder], doc: str | bytes) -> JobOrder:
    return cls.model_validate_json(doc)


_record = eventlog.record
_derive = sealing._derive


def _record_encoding_again(*args: Any, order_doc: str | None = None, **kwargs: Any) -> Any:
    return _record(*args, **kwargs)


def _uncached_keys(conn: Any, principal: str, key_id: str | None) -> Any:
    return keys.valid_keys(conn, principal)


#: Each step, and how to undo it (as the code was before it).
UNDO: dict[str, Callable[[], Any]] = {
    "stored_orders": lambda: _patched(JobOrder, "from_stored", classmethod(_validated)),
    "documents_reused": lambda: _patched(eventlog, "record", _record_encoding_again),
    "keys_cached": lambda: _patched(keys, "cached_valid_keys", _uncached_keys),
    "derived_once": lambda: _patched(sealing, "_derive", _derive.__wrapped__),
}
#: The configurations, cumulative: ``before`` undoes every step, each next one fewer.
STEPS = ["before", *UNDO]


def _run(seed_db: Path, folder: Path, kind: CommandKind, commands: int, on: int) -> float:
    """ms of CPU per command with the first ``on`` steps of :data:`UNDO` in place."""

    @contextmanager
    def undone() -> Iterator[None]:
        with ExitStack() as stack:
            for name in list(UNDO)[on:]:
                stack.enter_context(UNDO[name]())
            _derive.cache_clear()
            yield

    return measure_write_path._run(seed_db, folder, kind, commands, around=undone)


def main() -> None:
    """Print one JSON document: median ms of CPU per command by kind and configuration."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--folder", default=None)
    args = parser.parse_args()
    kinds = (
        CommandKind.REGISTER_PLACEMENT,
        CommandKind.CHANGE_ORDER_STATUS,
        CommandKind.UPDATE_ORDER,
    )
    runs: dict[str, dict[str, list[float]]] = {
        kind.value: {step: [] for step in STEPS} for kind in kinds
    }
    with tempfile.TemporaryDirectory(dir=args.folder) as name:
        folder = Path(name)
        seed_db = folder / "seed.db"
        load_orders(seed_db, args.orders, progress=False)
        for _ in range(args.rounds):
            order = [(kind, on) for kind in kinds for on in range(len(STEPS))]
            random.shuffle(order)
            for kind, on in order:
                runs[kind.value][STEPS[on]].append(_run(seed_db, folder, kind, args.commands, on))
    figures = {
        kind: {step: round(statistics.median(values), 3) for step, values in steps.items()}
        for kind, steps in runs.items()
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
