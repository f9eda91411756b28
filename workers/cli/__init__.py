"""``jobordre``: the command line, a thin wrapper over :class:`workers.client.client.Client`.

The commands, flags, JSON fields, error codes and exit codes here are a public contract
that jobcentre systems script against: extend them, never rename or drop them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from shared.commands import CommandKind
from shared.envelope import MAX_DEPTH, depth
from shared.errors import InvalidInput, JobordreError
from shared.models import JobType, OrderStatus, PlacementStatus, invalid_input_from
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


#: Modules that add command groups; each has ``add_commands(subparsers)`` and sets a
#: ``handler(args, settings) -> exit code`` on its parsers.
EXTENSIONS: tuple[str, ...] = (
    "workers.cli.inbox",
    "workers.cli.keys",
    "workers.cli.store",
    "workers.cli.privacy",
    "workers.cli.result",
    "workers.cli.ops",
    "notifier.cli",
    "workers.cli.bench",
)

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


def read_json(path: str, field: str) -> dict[str, Any]:
    """A JSON object from a file (or stdin for ``-``); any malformed input is InvalidInput."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with Path(path).open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise InvalidInput(f"{field}: cannot read {path}: {error.strerror}", field=field) from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(
            f"{field}: {path} is larger than {MAX_FILE_BYTES} bytes; a job order is far smaller",
            field=field,
        )
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


# --- commands: each turns arguments into (kind, payload) -----------------------------------

Command = tuple[CommandKind, dict[str, Any]]
Build = Callable[[argparse.Namespace], Command]


def _by_order_id(kind: CommandKind) -> Build:
    def build(args: argparse.Namespace) -> Command:
        return kind, {"order_id": args.id}

    return build


def _order_register(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.REGISTER_ORDER, {"order": read_json(a.file, "file")}


def _order_get(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.GET_ORDER, {"order_id": a.id}


def _order_search(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    payload = {
        "text": " ".join(a.text) or None,
        "municipality": a.municipality,
        "status": a.status,
        "job_type": a.job_type,
        "employer": a.employer,
        "limit": a.limit,
        "offset": a.offset,
    }
    return CommandKind.SEARCH_ORDERS, {k: v for k, v in payload.items() if v is not None}


def _order_update(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.UPDATE_ORDER, {
        "order_id": a.id,
        "expected_version": a.expected_version,
        "patch": read_json(a.file, "file"),
    }


def _order_status(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    payload: dict[str, Any] = {"order_id": a.id, "status": a.status}
    if a.expected_version is not None:
        payload["expected_version"] = a.expected_version
    if a.note is not None:
        payload["note"] = a.note
    return CommandKind.CHANGE_ORDER_STATUS, payload


def _order_changes(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.ORDER_CHANGES, {"since": a.since, "limit": a.limit}


def _placement_register(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    payload: dict[str, Any] = {
        "order_id": a.order_id,
        "cpr": read_cpr(a.cpr),
        "referral": a.referral,
    }
    if a.note is not None:
        payload["note"] = a.note
    return CommandKind.REGISTER_PLACEMENT, payload


def _placement_status(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    payload: dict[str, Any] = {
        "order_id": a.order_id,
        "placement_id": a.placement_id,
        "status": a.status,
    }
    if a.note is not None:
        payload["note"] = a.note
    return CommandKind.CHANGE_PLACEMENT_STATUS, payload


def _placement_log(a: argparse.Namespace) -> tuple[CommandKind, dict[str, Any]]:
    return CommandKind.PLACEMENT_LOG, {"order_id": a.order_id}


# --- human output --------------------------------------------------------------------------


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


# --- the parser ----------------------------------------------------------------------------


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


def build_parser() -> argparse.ArgumentParser:
    """The ``jobordre`` argument parser."""
    parser = Parser(
        prog="jobordre",
        description="Job orders through the common data foundation (BEK 442/2023 § 137).",
    )
    parser.add_argument(
        "--version", action="version", version=f"jobordre {importlib.metadata.version('jobordre')}"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    up = commands.add_parser("up", help="run broker and workers in one process (embedded default)")
    up.set_defaults(handler=_up)
    up.add_argument(
        "--processes", type=int, metavar="N", help="worker processes (default 1: best on 2 cores)"
    )
    up.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="one short line per job (text) or one JSON object per job (json)",
    )
    up.add_argument("--log-file", metavar="FILE", help="also append the JSON job log to FILE")
    worker = commands.add_parser("worker", help="run workers against JOBORDRE_REDIS_URL")
    worker.set_defaults(handler=_worker)
    worker.add_argument("--processes", type=int, help="worker processes (default 1)")
    worker.add_argument(
        "--threads",
        type=int,
        help="query threads per process (default 8); write commands have one thread of their own",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve Prometheus metrics on port N (process i of --processes on N + i)",
    )

    order = commands.add_parser("order", help="job orders (S1–S3)")
    orders = order.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = orders.add_parser("register", help="register a job order from ORDER.json")
    p.add_argument("--file", required=True, help="ORDER.json, or - for stdin")
    acting(p, _order_register)
    p = orders.add_parser("get", help="fetch one job order")
    p.add_argument("id", type=int)
    acting(p, _order_get)
    p = orders.add_parser("search", help="search job orders")
    p.add_argument("text", nargs="*", help="words that must occur (prefixes match)")
    p.add_argument("--municipality", metavar="K")
    p.add_argument("--status", choices=[s.value for s in OrderStatus])
    p.add_argument("--job-type", choices=[t.value for t in JobType])
    p.add_argument("--employer", metavar="CVR")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--offset", type=int, default=0)
    acting(p, _order_search)
    p = orders.add_parser("update", help="change fields of a job order from PATCH.json")
    p.add_argument("id", type=int)
    p.add_argument("--expected-version", type=int, required=True)
    p.add_argument("--file", required=True, help="PATCH.json, or - for stdin")
    acting(p, _order_update)
    p = orders.add_parser("status", help="inactivate, reactivate or close a job order")
    p.add_argument("id", type=int)
    p.add_argument("status", choices=[s.value for s in OrderStatus])
    p.add_argument("--expected-version", type=int)
    p.add_argument("--note")
    acting(p, _order_status)
    for name, kind, text in (
        ("take", CommandKind.TAKE_ORDER, "take a job order into processing (R3a)"),
        ("release", CommandKind.RELEASE_ORDER, "stop processing a job order"),
    ):
        p = orders.add_parser(name, help=text)
        p.add_argument("id", type=int)
        acting(p, _by_order_id(kind))
    p = orders.add_parser("changes", help="orders changed since a cursor")
    p.add_argument("--since", default="0", metavar="CURSOR")
    p.add_argument("--limit", type=int, default=100)
    acting(p, _order_changes)

    placement = commands.add_parser("placement", help="placements and the placement log (S4–S6)")
    placements = placement.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = placements.add_parser("register", help="register a placement (formidling)")
    p.add_argument("order_id", type=int)
    p.add_argument("--cpr", required=True, help="the person's CPR, or - to read it from stdin")
    p.add_argument("--referral", action="store_true", help="a referral (henvisning)")
    p.add_argument("--note")
    acting(p, _placement_register)
    p = placements.add_parser("status", help="change a person's status on an order")
    p.add_argument("order_id", type=int)
    p.add_argument("placement_id", type=int)
    p.add_argument("status", choices=[s.value for s in PlacementStatus])
    p.add_argument("--note")
    acting(p, _placement_status)
    p = placements.add_parser("log", help="the placement log (formidlingslog) of an order")
    p.add_argument("order_id", type=int)
    acting(p, _placement_log)

    for extension in EXTENSIONS:
        importlib.import_module(extension).add_commands(commands)
    return parser


# --- running -------------------------------------------------------------------------------


def emit(document: dict[str, Any], as_json: bool, human: str) -> None:
    print(json.dumps(document, ensure_ascii=False) if as_json else human)


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


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from workers.embedded.up import DEFAULT_PROCESSES, UpOptions, run_up

    processes = args.processes if args.processes is not None else DEFAULT_PROCESSES
    if not 1 <= processes <= 64:
        raise InvalidInput("--processes: from 1 to 64", field="processes")
    log_file = Path(args.log_file) if args.log_file else None
    return run_up(settings, UpOptions(processes, args.log_format, log_file))


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.transport.broker import resolve_redis_url
    from workers.worker.runner import run_workers

    if not settings.redis_url:
        raise InvalidInput(
            "jobordre worker needs JOBORDRE_REDIS_URL; without it, run `jobordre up`",
            field="JOBORDRE_REDIS_URL",
        )
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": args.metrics_port})
    return run_workers(
        settings,
        resolve_redis_url(settings),
        args.processes or settings.worker_processes,
        args.threads or settings.worker_threads,
    )


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit code (see :data:`EXIT_CODES`)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments
    try:
        args = build_parser().parse_args(arguments)
        handler: Handler = args.handler
        return handler(args, load_settings())
    except JobordreError as error:
        if as_json:
            print(json.dumps({"error": error.to_dict()}, ensure_ascii=False))
        else:
            print(f"jobordre: {error.code}: {error.message}", file=sys.stderr)
        return EXIT_CODES.get(error.code, 1)


def main() -> None:
    """Console entry point."""
    sys.exit(run())
