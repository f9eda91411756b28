"""``jobordre broker acl``: write the Redis ACL file (:mod:`workers.ops.acl`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.events import AUTHORITIES
from shared.models import Principal
from shared.settings import Settings
from workers.cli.common import Parser, emit
from workers.ops.acl import acl_text, password, users


def _known_principals(settings: Settings) -> list[str]:
    """The organisations with a valid signing key in the store."""
    from shared import keys
    from shared.store import open_store

    store = open_store(settings)
    try:
        with store.read() as conn:
            listed = keys.listing(conn, None)
    finally:
        store.close()
    return [
        str(k["principal"])
        for k in listed
        if k["revoked_at"] is None and k["principal"] != "system"
    ]


def _acl(args: argparse.Namespace, settings: Settings) -> int:
    principals = [str(Principal.parse(org, "org")) for org in args.org]
    if not args.only:
        principals += _known_principals(settings)
    folder = Path(args.secrets) if args.secrets else settings.home / "broker-acl"
    made = users(settings.redis_prefix, principals)
    passwords = {user.name: password(folder, user.name) for user in made}
    text = acl_text(made, passwords)
    out = Path(args.out) if args.out else folder / "users.acl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.chmod(0o600)
    document: dict[str, Any] = {
        "acl_file": str(out),
        "users": [
            {
                "user": user.name,
                "principal": user.principal,
                "password_file": str(folder / f"{user.name}.password"),
            }
            for user in made
        ],
    }
    human = (
        f"{text}\nwritten to {out}: start redis-server 7 with --aclfile {out} (or "
        f"ACL LOAD). Each user's password is in {folder}/<user>.password; an organisation "
        "connects as redis://<user>:<password>@host:port/0"
    )
    emit(document, args.json, human)
    return 0


def add_commands(commands: Any) -> None:
    """Add ``jobordre broker acl``."""
    group = commands.add_parser("broker", help="the shared Redis broker (operator)")
    actions = group.add_subparsers(dest="action", required=True, parser_class=Parser)
    p = actions.add_parser(
        "acl",
        help="write a Redis 7 ACL file: a user per organisation, the workers and ops; "
        f"each organisation alone on the broker (the {AUTHORITIES} stream for authorities)",
    )
    p.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="PRINCIPAL",
        help="an organisation to make a user for (besides every one with a key in the store)",
    )
    p.add_argument(
        "--only", action="store_true", help="only the --org organisations, not the store's"
    )
    p.add_argument("--out", help="where to write the ACL file (default: SECRETS/users.acl)")
    p.add_argument(
        "--secrets", help="folder of the users' password files (default: HOME/broker-acl)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_acl)
