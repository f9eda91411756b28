"""What every ``jobordre`` command family shares: the parser class, the input readers,
the ``--as`` options of a command that acts as an organisation, and the output.

The command families (workers/cli/*.py) import this module; the package (workers/cli/
__init__.py) imports the families. Nothing here imports a family back.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from shared.commands import CommandKind
from shared.envelope import MAX_DEPTH, depth
from shared.errors import InvalidInput
from shared.models import invalid_input_from
from shared.settings import Settings, get_settings

#: Exit code of each error code; 0 is success, 1 an unexpected failure.
EXIT_CODES: dict[str, int] = {
    "validation_error": 2,
    "forbidden": 3,
    "not_found": 4,
    "version_conflict": 5,
    "invalid_transition": 6,
    "unavailable": 7,
}


Handler = Callable[[argparse.Namespace, Settings], int]


def load_settings() -> Settings:
    """The settings, with a bad ``JOBORDRE_*`` value reported as :class:`InvalidInput`."""
    try:
        return get_settings()
    except ValidationError as error:
        raise invalid_input_from(error) from None


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are :class:`InvalidInput` (printable as JSON)."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{self.prog}: {message}; see `{self.prog} --help`")


#: Largest ORDER.json / PATCH.json accepted, in bytes: a whole order is about 12 kB, and a
#: command's envelope may not exceed 256 KiB on the queue.
MAX_FILE_BYTES = 256 * 1024
#: Most bytes read for a CPR from stdin (a CPR is 10 digits, maybe with a dash).
MAX_CPR_BYTES = 64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_limited(path: str, field: str, limit: int, why: str) -> bytes:
    """A file's bytes (stdin for ``-``), at most ``limit``; :class:`InvalidInput` naming
    ``field`` (and ``why`` the limit is enough) if it cannot be read or is larger."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with Path(path).open("rb") as file:
                data = file.read(limit + 1)
    except OSError as error:
        raise InvalidInput(f"{field}: cannot read {path}: {error.strerror}", field=field) from None
    if len(data) > limit:
        raise InvalidInput(f"{field}: {path} is larger than {limit} bytes; {why}", field=field)
    return data


def read_json(path: str, field: str) -> dict[str, Any]:
    """A JSON object from a file (or stdin for ``-``); any malformed input is InvalidInput."""
    data = read_limited(path, field, MAX_FILE_BYTES, "a job order is far smaller")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{field}: {path} is not UTF-8 text; save it as UTF-8", field=field
        ) from None
    if not text.strip():
        raise InvalidInput(f"{field}: {path} is empty; it must hold a JSON object", field=field)
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidInput(f"{field}: {path} is nested too deeply", field=field) from None
    except ValueError as error:
        raise InvalidInput(f"{field}: {path} is not valid JSON ({error})", field=field) from None
    if not isinstance(document, dict):
        raise InvalidInput(f"{field}: {path} must hold a JSON object", field=field)
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{field}: {path} holds a \\u escape that is no character (a lone surrogate)",
            field=field,
        ) from None
    if depth(document) > MAX_DEPTH:
        raise InvalidInput(
            f"{field}: {path} is nested deeper than {MAX_DEPTH} levels; see the README's "
            "job order fields",
            field=field,
        )
    return document


def read_cpr(value: str) -> str:
    """The CPR given on the command line, or read from stdin for ``-``."""
    # "-" keeps the CPR out of the process list and the shell history.
    if value != "-":
        return value
    line = sys.stdin.buffer.readline(MAX_CPR_BYTES + 1)
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidInput("cpr: stdin is not UTF-8 text; give 10 digits", field="cpr") from None
    if not text or len(line) > MAX_CPR_BYTES:
        raise InvalidInput(
            "cpr: read no CPR from stdin; give one line of 10 digits (DDMMYYXXXX)", field="cpr"
        )
    return text


Command = tuple[CommandKind, dict[str, Any]]
Build = Callable[[argparse.Namespace], Command]


# --- output -----------------------------------------------------------------------------


def emit(document: dict[str, Any], as_json: bool, human: str) -> None:
    print(json.dumps(document, ensure_ascii=False) if as_json else human)


def _human_order(order: dict[str, Any]) -> str:
    return (
        f"jobordre {order['id']} v{order['version']} [{order['status']}] {order['title']} — "
        f"{order['employer']['cvr']}, {order['address']['city']} "
        f"(kommune {order['address']['municipality']}), frist {order['placement_deadline']}"
    )


def _human_placement(placement: dict[str, Any]) -> str:
    person = placement["cpr"] if placement["cpr"] else "(skjult)"
    return (
        f"formidling {placement['id']} på jobordre {placement['order_id']}: "
        f"{placement['status']}, {person}, af {placement['placed_by']}"
        + (" (henvisning)" if placement["referral"] else "")
    )


def human(kind: CommandKind, result: dict[str, Any]) -> str:
    """What a person reads for the result of a command of ``kind``."""
    if kind == CommandKind.SEARCH_ORDERS:
        lines = [f"{result['total']} jobordrer"]
        lines += [_human_order(order) for order in result["results"]]
        return "\n".join(lines)
    if kind == CommandKind.ORDER_CHANGES:
        lines = [
            f"#{c['cursor']} {c['at']} {c['type']} jobordre {c['order_id']} "
            f"v{c['version']} [{c['status']}] af {c['by']}"
            for c in result["changes"]
        ]
        return "\n".join([*lines, f"cursor: {result['cursor']}"])
    if kind == CommandKind.PLACEMENT_LOG:
        lines = [f"formidlingslog for jobordre {result['order_id']} [{result['status']}]"]
        lines += [_human_placement(p) for p in result["placements"]]
        lines += [
            f"  {e['at']} formidling {e['placement_id']}: {e['from_status'] or '—'} → "
            f"{e['to_status']} ({e['organisation']})"
            for e in result["entries"]
        ]
        return "\n".join(lines)
    if kind in (CommandKind.REGISTER_PLACEMENT, CommandKind.CHANGE_PLACEMENT_STATUS):
        return _human_placement(result)
    return _human_order(result)


# --- commands that act as an organisation -----------------------------------------------


def acting(
    parser: argparse.ArgumentParser,
    build: Build,
    human: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    """Make ``parser`` a command that acts as an organisation: ``--as``, ``--json`` & co."""
    parser.add_argument(
        "--as",
        dest="principal",
        required=True,
        metavar="PRINCIPAL",
        help="jobcentre:<kommunekode>, akasse:<code> or employer:<cvr>",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--caseworker", help="the caseworker acting for the organisation")
    parser.add_argument("--command-id", help="idempotency key; resend a command with its id")
    parser.add_argument("--timeout-ms", type=int, help="how long to wait for the result")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help='print {"command_id": ...} once the command is queued; `jobordre result` fetches '
        "its result later (write commands only)",
    )
    parser.set_defaults(build=build, handler=_act, human=human)


def _act(args: argparse.Namespace, settings: Settings) -> int:
    from workers.client import Client

    kind, payload = args.build(args)
    if args.no_wait and not kind.writes:
        raise InvalidInput(
            f"--no-wait: {kind} only reads, and the result of a read is not kept; wait for it",
            field="no_wait",
        )
    client = Client(settings, args.principal, caseworker=args.caseworker)
    try:
        if args.no_wait:
            command_id = client.send(kind, payload, command_id=args.command_id)
            emit({"command_id": command_id}, args.json, command_id)
            return 0
        result = client.call(kind, payload, command_id=args.command_id, timeout_ms=args.timeout_ms)
    finally:
        client.close()
    emit(result, args.json, args.human(result) if args.human else human(kind, result))
    return 0
