"""``jobordre migrate`` and ``jobordre store copy``: the operator's commands for the store.

``migrate`` runs the store's numbered migrations (workers also run them at start; several
hosts starting at once migrate one after the other). ``store copy --to URL`` copies the
store (by default the SQLite file at ``JOBORDRE_DB``) into an empty PostgreSQL database and
verifies it, in one transaction (:mod:`shared.store.copy`); then point the workers at it
with ``JOBORDRE_DATABASE_URL``.

The target's password stays out of the command line, where every user of the host reads
it (``ps``, ``/proc/<pid>/cmdline``): give ``--to`` without one and the password in
``--to-password-file`` (a file of the operator's, 0600), or in libpq's own ``PGPASSWORD``
or ``PGPASSFILE``. A password in ``--to`` still works, with a warning.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from shared.errors import InvalidInput
from shared.settings import Settings
from shared.store import open_store, open_url
from shared.store.copy import copy_store
from workers.cli.common import Parser, emit


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings, migrate=False)
    try:
        before = store.migrate()
        after = store.schema_version()
    finally:
        store.close()
    emit(
        {"engine": store.engine, "store": store.describe(), "from": before, "to": after},
        args.json,
        f"{store.engine} store {store.describe()}: schema version {before} -> {after}"
        if before != after
        else f"{store.engine} store {store.describe()}: at schema version {after} already",
    )
    return 0


#: Largest password file ``--to-password-file`` reads, in bytes.
MAX_PASSWORD_FILE_BYTES = 4096


def _target_url(url: str, password_file: str | None) -> str:
    """``--to``, with the password of ``--to-password-file`` in it (in this process only);
    a warning on stderr when ``--to`` itself carries one."""
    parts = urlsplit(url)
    if parts.password is not None:
        print(
            "warning: --to carries a password, which other users of this host can read in "
            "the process list; give it in --to-password-file, PGPASSWORD or PGPASSFILE",
            file=sys.stderr,
        )
    if password_file is None:
        return url
    try:
        with Path(password_file).open("rb") as file:
            data = file.read(MAX_PASSWORD_FILE_BYTES + 1)
    except OSError as error:
        raise InvalidInput(
            f"--to-password-file: cannot read {password_file} ({error.strerror})",
            field="to_password_file",
        ) from None
    try:
        lines = data.decode().splitlines()
    except UnicodeDecodeError:
        lines = []
    if len(data) > MAX_PASSWORD_FILE_BYTES or not lines or not lines[0]:
        raise InvalidInput(
            f"--to-password-file: {password_file} must hold the password on its first line "
            f"(at most {MAX_PASSWORD_FILE_BYTES} bytes)",
            field="to_password_file",
        )
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}:{quote(lines[0], safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _rounded(seconds: dict[str, Any]) -> dict[str, Any]:
    """Phase timings to the tenth of a second (a nested dict per table)."""
    return {
        name: _rounded(value) if isinstance(value, dict) else round(value, 1)
        for name, value in seconds.items()
    }


def _copy(args: argparse.Namespace, settings: Settings) -> int:
    to = _target_url(args.to, args.to_password_file)
    source = open_url(args.source) if args.source else open_store(settings)
    try:
        target = open_url(to, pool_size=2)
        seconds: dict[str, Any] = {}
        try:
            tables = copy_store(source, target, seconds=seconds)
        finally:
            target.close()
    finally:
        source.close()
    document = {
        "from": {"engine": source.engine, "store": source.describe()},
        "to": {"engine": target.engine, "store": target.describe()},
        "tables": tables,
        "verified": True,
        "seconds": _rounded(seconds),
    }
    lines = [f"copied {source.describe()} -> {target.describe()}, verified:"]
    lines += [
        f"  {name}: {t['rows']} rows, checksum {t['checksum'][:16]}" for name, t in tables.items()
    ]
    lines.append(
        f"  in {seconds['total']:.1f} s (load {sum(seconds['load'].values()):.1f} s, indexes "
        f"{seconds['indexes']:.1f} s, verification {seconds['verify']:.1f} s)"
    )
    emit(document, args.json, "\n".join(lines))
    return 0


def add_commands(commands: Any) -> None:
    """Add ``jobordre migrate`` and ``jobordre store copy``."""
    p = commands.add_parser("migrate", help="run the store's schema migrations")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_migrate)
    group = commands.add_parser("store", help="the foundation's store (operator)")
    actions = group.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = actions.add_parser(
        "copy", help="copy the store into an empty PostgreSQL database, verified per table"
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="postgresql://user@host/db (the password from --to-password-file, PGPASSWORD "
        "or PGPASSFILE: a password in the URL is visible to every user of the host)",
    )
    p.add_argument(
        "--to-password-file",
        metavar="PATH",
        help="a file holding the target's password on its first line",
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="the store to copy (default: the configured store, e.g. the SQLite file)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_copy)
