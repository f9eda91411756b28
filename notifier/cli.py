"""``jobordre notifier``: the caseworker's desktop notifier, and installing it.

* ``jobordre notifier --caseworker ID --as P``: run it (with a tray icon where the desktop
  has a tray; ``--terminal`` prints instead, ``--no-tray`` leaves the tray alone).
* ``jobordre notifier install --caseworker ID --as P --key FILE``: start it at every login
  (:mod:`notifier.install`); ``uninstall`` removes all of it.
* ``jobordre notifier start``: run it as installed (what the autostart entry runs).
* ``jobordre notifier status [--json]``: whether it runs, since when, connected or not, the
  last change shown (:mod:`notifier.session`).

A notifier already running for the same caseworker makes a second start say so and exit
with :data:`notifier.install.ALREADY_RUNNING_EXIT`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from shared.errors import InvalidInput
from shared.models import Principal
from shared.redaction import RedactingFormatter
from shared.settings import Settings


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("jobordre notifier: %(message)s"))
    logger = logging.getLogger("notifier")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _who(args: argparse.Namespace) -> tuple[str, str]:
    """The checked (caseworker, organisation) of the command line."""
    from shared.commands import Following

    if not args.principal:
        raise InvalidInput("as: name the caseworker's organisation (--as)", field="as")
    principal = str(Principal.parse(args.principal, "as"))
    try:
        Following(caseworker=args.caseworker or "")
    except ValueError:
        raise InvalidInput(
            "caseworker: 1–64 letters, digits or . _ @ -", field="caseworker"
        ) from None
    return args.caseworker, principal


def _notifier(args: argparse.Namespace, settings: Settings) -> int:
    caseworker, principal = _who(args)
    return _run(settings, caseworker, principal, terminal=args.terminal, tray=not args.no_tray,
                verbose=args.verbose)  # fmt: skip


def _run(
    settings: Settings, caseworker: str, principal: str, *, terminal: bool, tray: bool,
    verbose: bool,
) -> int:  # fmt: skip
    from notifier.backend import (
        Desktop,
        FallbackDesktop,
        TerminalDesktop,
        check_order_url,
        desktop_backend,
        order_link,
    )
    from notifier.cursor import CursorFile
    from notifier.install import ALREADY_RUNNING_EXIT
    from notifier.service import Notifier
    from notifier.session import SessionLock, StateFile, session_paths
    from notifier.source import ClientQueries, RedisEventStream
    from notifier.texts import desktop_text
    from notifier.tray import Controls, NoTray, Tray, start_tray
    from shared.errors import AlreadyRunning
    from workers.client import Client

    check_order_url(settings.order_url)
    _configure_logging(verbose)
    lock_path, state_path = session_paths(settings.home, principal, caseworker)
    lock = SessionLock(lock_path)
    try:
        lock.acquire()
    except AlreadyRunning as running:
        said = desktop_text("already_running", settings.language, pid=running.pid)
        print(f"jobordre notifier: {said}", file=sys.stderr)
        return ALREADY_RUNNING_EXIT
    desktop: Desktop = (
        TerminalDesktop()
        if terminal
        else FallbackDesktop(
            desktop_backend(settings.notifier_display_ms, settings.order_url), TerminalDesktop()
        )
    )
    template = settings.order_url
    open_order: Callable[[int], None] | None = None
    if template is not None:

        def open_order(order_id: int) -> None:
            link = order_link(template, order_id)
            if link is not None:
                webbrowser.open(link)

    controls = Controls()
    icon: Tray = start_tray(settings.language, controls, open_order) if tray and not terminal \
        else NoTray()  # fmt: skip
    state = StateFile(state_path)
    client = Client(settings, principal, caseworker=caseworker)
    stream = RedisEventStream(client.url, settings.redis_prefix, principal)
    notifier = Notifier(
        foundation=ClientQueries(client),
        stream=stream,
        desktop=desktop,
        cursor_file=CursorFile.for_caseworker(settings.home, principal, caseworker),
        principal=principal,
        caseworker=caseworker,
        language=settings.language,
        quiet_s=settings.notifier_quiet_ms / 1000,
        burst_s=settings.notifier_burst_ms / 1000,
        follows_refresh_s=settings.notifier_follows_refresh_ms / 1000,
        reconnect_max_s=settings.notifier_reconnect_max_ms / 1000,
        controls=controls,
        trays=(state, icon),
    )
    stopping: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print("jobordre notifier: running; stop with Ctrl-C", file=sys.stderr, flush=True)
    try:
        notifier.run(lambda: bool(stopping))
    finally:
        icon.stop()
        state.stop()
        stream.close()
        client.close()
        lock.release()
    return 0


def _install(args: argparse.Namespace, settings: Settings) -> int:
    from notifier.install import Installation, install
    from notifier.texts import desktop_text

    caseworker, principal = _who(args)
    if not sys.platform.startswith("linux"):
        raise InvalidInput(
            "install writes a Linux desktop's autostart entry; on Windows and macOS start "
            "`jobordre notifier --caseworker ID --as P` from the login items",
            field="platform",
        )
    where = Installation.here()
    written = install(
        where,
        caseworker=caseworker,
        principal=principal,
        key=Path(args.key),
        environment=dict(os.environ),
    )
    if args.json:
        print(json.dumps({"installed": True, "files": [str(p) for p in written]}))
    else:
        language = settings.language
        print(desktop_text("installed", language, autostart=where.autostart, key=where.key))
        print(desktop_text("start_now", language, command="jobordre notifier start &"))
    return 0


def _uninstall(args: argparse.Namespace, settings: Settings) -> int:
    from notifier.install import Installation, uninstall
    from notifier.texts import desktop_text

    removed = uninstall(Installation.here())
    if args.json:
        print(json.dumps({"removed": [str(p) for p in removed]}))
    else:
        print(desktop_text("uninstalled", settings.language, count=len(removed)))
    return 0


def _installed_settings(config: dict[str, Any]) -> Settings:
    """The settings the installed notifier runs with: the installing shell's ``JOBORDRE_*``
    over this process's own."""
    from shared.settings import Settings

    for name, value in config.get("environment", {}).items():
        if str(name).startswith("JOBORDRE_"):
            os.environ[str(name)] = str(value)
    return Settings()


def _start(args: argparse.Namespace, settings: Settings) -> int:
    from notifier.install import Installation

    config = Installation.here().load()
    if config is None:
        raise InvalidInput(
            "not installed: run `jobordre notifier install --caseworker ID --as P --key FILE`",
            field="config",
        )
    return _run(
        _installed_settings(config),
        str(config["caseworker"]),
        str(config["principal"]),
        terminal=False,
        tray=True,
        verbose=args.verbose,
    )


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from notifier.install import Installation
    from notifier.session import status
    from notifier.texts import desktop_text

    config = Installation.here().load()
    if args.caseworker or args.principal:
        caseworker, principal = _who(args)
        home = settings.home
    elif config is not None:
        caseworker, principal = str(config["caseworker"]), str(config["principal"])
        installed_home = config.get("environment", {}).get("JOBORDRE_HOME")
        home = Path(installed_home) if installed_home else settings.home
    else:
        raise InvalidInput(
            "not installed: name the caseworker (--caseworker ID --as P)", field="caseworker"
        )
    report = {
        "installed": config is not None,
        "caseworker": caseworker,
        "as": principal,
        **status(home, principal, caseworker),
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    language = settings.language

    def text(key: str, **values: object) -> str:
        return desktop_text(key, language, **values)

    lines = [f"{caseworker} ({principal})"]
    if not report["installed"]:
        lines.append(text("not_installed"))
    if report["running"]:
        state = text(report["state"]) if report["state"] else "?"
        lines.append(text("running_since", since=report["since"], pid=report["pid"], state=state))
        shown = report["last_shown"]
        lines.append(
            text("last_shown", at=shown["at"], title=shown["title"])
            if shown
            else text("nothing_shown")
        )
    else:
        lines.append(text("not_running"))
    print("\n".join(lines))
    return 0


def _who_options(p: argparse.ArgumentParser, required_help: str) -> None:
    p.add_argument("--caseworker", help=f"the caseworker {required_help}")
    p.add_argument(
        "--as",
        dest="principal",
        metavar="PRINCIPAL",
        help="the caseworker's organisation: jobcentre:<kommunekode> or akasse:<code>",
    )


def add_commands(commands: Any) -> None:
    """Add ``jobordre notifier`` and its ``install``, ``uninstall``, ``start``, ``status``."""
    p = commands.add_parser(
        "notifier", help="show desktop notifications for the job orders a caseworker follows"
    )
    _who_options(p, "whose follows to show")
    p.add_argument(
        "--terminal", action="store_true", help="print notifications here, not on the desktop"
    )
    p.add_argument("--no-tray", action="store_true", help="show no icon in the desktop's tray")
    p.add_argument("-v", "--verbose", action="store_true", help="log connects and catch-ups")
    p.set_defaults(handler=_notifier)
    actions = p.add_subparsers(dest="action", metavar="{install,uninstall,start,status}")

    q = actions.add_parser("install", help="start the notifier at every login (Linux desktops)")
    _who_options(q, "whose follows to show")
    q.add_argument(
        "--key",
        required=True,
        metavar="FILE",
        help="the caseworker's key file (give one made with `jobordre keys create --scope "
        "notify`); copied into your own config, mode 0600",
    )
    q.add_argument("--json", action="store_true", help="print the files written as JSON")
    q.set_defaults(handler=_install)

    q = actions.add_parser("uninstall", help="stop the notifier and remove what install wrote")
    q.add_argument("--json", action="store_true", help="print the files removed as JSON")
    q.set_defaults(handler=_uninstall)

    q = actions.add_parser("start", help="run the notifier as installed (the autostart entry)")
    q.add_argument("-v", "--verbose", action="store_true", help="log connects and catch-ups")
    q.set_defaults(handler=_start)

    q = actions.add_parser("status", help="whether the notifier runs, connected or not")
    _who_options(q, "(default: the installed one)")
    q.add_argument("--json", action="store_true", help="print the status as JSON")
    q.set_defaults(handler=_status)
