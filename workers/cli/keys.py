"""``jobordre keys``: the operator's commands for the organisations' signing keys.

They work on the store directly, so they run on the foundation's host.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared import keys
from shared.clock import utc_now
from shared.errors import InvalidInput
from shared.models import Principal
from shared.settings import Settings
from shared.signing import SigningKey
from shared.signing_v2 import VERSION as PROTOCOL_2
from shared.signing_v2 import OrganisationKey
from shared.store import Store, open_store
from workers.cli.common import Parser, emit


def _store(settings: Settings) -> Store:
    return open_store(settings)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    from workers.client.credentials import create_v2_key, write_key

    principal = str(Principal.parse(args.organisation, "ORG"))
    key: SigningKey | OrganisationKey
    if args.protocol == PROTOCOL_2:
        if args.scope is not None:
            raise InvalidInput(
                "scope: a protocol 2 key is not scoped yet; make the notifier's key with "
                "--protocol 1",
                field="scope",
            )
        # Only the public keys go to the store; the private key file is the organisation's.
        key = create_v2_key(_store(settings), settings, principal)
    else:
        with _store(settings).write() as conn:
            key = keys.create(
                conn, principal, utc_now(), scope=args.scope, caseworker=args.caseworker
            )
    scope = getattr(key, "scope", None)
    caseworker = getattr(key, "caseworker", None)
    # A scoped key has a file of its own: it must never take the organisation's key's place.
    name = principal.replace(":", "_")
    if scope is not None:
        name += f"_{scope}_{caseworker}"
    path = Path(args.out) if args.out else settings.keys_path / f"{name}.key"
    write_key(path, key)
    verb = (
        "rotated: the old keys stay valid until revoked" if args.action == "rotate" else "created"
    )
    scoped = "" if scope is None else f" (scope {scope}, caseworker {caseworker})"
    holder = "the organisation" if scope is None else f"caseworker {caseworker}"
    emit(
        {
            "principal": principal,
            "key_id": key.key_id,
            "file": str(path),
            "protocol": args.protocol,
            "scope": scope,
            "caseworker": caseworker,
        },
        args.json,
        f"key {key.key_id} for {principal}{scoped} {verb}; hand {path} to {holder}",
    )
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    principal = str(Principal.parse(args.organisation, "ORG"))
    with _store(settings).write() as conn:
        keys.revoke(conn, principal, args.key_id, utc_now())
    emit(
        {"principal": principal, "key_id": args.key_id, "revoked": True},
        args.json,
        f"key {args.key_id} of {principal} revoked",
    )
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    principal = str(Principal.parse(args.organisation, "ORG")) if args.organisation else None
    with _store(settings).read() as conn:
        listed = keys.listing(conn, principal)
    human = (
        "\n".join(
            f"{k['key_id']} {k['principal']} created {k['created_at']}"
            + (f" scope {k['scope']} caseworker {k['caseworker']}" if k["scope"] else "")
            + (f" revoked {k['revoked_at']}" if k["revoked_at"] else " valid")
            for k in listed
        )
        or "no keys"
    )
    emit({"keys": listed}, args.json, human)
    return 0


def _foundation(args: argparse.Namespace, settings: Settings) -> int:
    from workers.client.credentials import foundation_key

    public = foundation_key(settings).public.to_dict()
    emit(
        {**public, "file": str(settings.foundation_key_path)},
        args.json,
        json.dumps(public),
    )
    return 0


def add_commands(commands: Any) -> None:
    """Add ``jobordre keys create|rotate|revoke|foundation|list``."""
    group = commands.add_parser("keys", help="signing keys of the organisations (operator)")
    actions = group.add_subparsers(dest="action", required=True, parser_class=Parser)
    for name, text in (
        ("create", "make a key for an organisation and write its key file"),
        ("rotate", "make a new key; the old ones stay valid until revoked"),
    ):
        p = actions.add_parser(name, help=text)
        p.add_argument("organisation", metavar="ORG")
        p.add_argument("--out", help="where to write the key file (default: the key folder)")
        p.add_argument(
            "--protocol",
            type=int,
            choices=(1, PROTOCOL_2),
            default=1,
            help="1: a shared HMAC secret; 2: an Ed25519/X25519 key pair whose private key "
            "file is the organisation's (the store keeps the public keys only)",
        )
        p.add_argument(
            "--scope",
            choices=sorted(keys.SCOPES),
            help="a key that may do only this: notify = the desktop notifier's "
            "(following, unfollow and inbox headers of one caseworker, nothing else)",
        )
        p.add_argument("--caseworker", help="the caseworker a scoped key is bound to")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=_create)
    p = actions.add_parser("revoke", help="make one key invalid")
    p.add_argument("organisation", metavar="ORG")
    p.add_argument("--key-id", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_revoke)
    p = actions.add_parser(
        "foundation", help="the foundation's protocol 2 public keys (made on first use)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_foundation)
    p = actions.add_parser("list", help="keys and whether they are valid (never the secrets)")
    p.add_argument("organisation", metavar="ORG", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_list)
