"""Test hosts in network namespaces: what the two-host test and the nemesis harness share.

Contract: :func:`available` says whether this process may make namespaces (root, with
``ip`` and ``unshare``); :func:`unrouted_subnet` finds a network in ``10.200.0.0`` to
``10.249.255.255`` that no route or address of this machine touches, so links made in it
carry no traffic anywhere but between the test's namespaces; :func:`host_namespace` makes
one host: a namespace joined to the test's by a /30 veth link; :func:`ip` runs one ``ip``
command. Callers fall back to loopback where :func:`available` is false.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess

#: Candidates tried before :func:`unrouted_subnet` gives up.
TRIES = 200


def available() -> bool:
    """Whether this process may make network namespaces and links."""
    return os.geteuid() == 0 and all(shutil.which(tool) for tool in ("ip", "unshare"))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run ``ip ARGS``; a failure raises :class:`subprocess.CalledProcessError` when
    ``check``."""
    return subprocess.run(["ip", *args], check=check, capture_output=True, timeout=10)


def routed_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network a route of this machine covers, in any table (the default
    route left out)."""
    shown = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return [
        ipaddress.IPv4Network(route["dst"], strict=False)
        for route in json.loads(shown.stdout)
        if route.get("dst", "default") != "default"
    ]


def unrouted_subnet(prefix: int) -> ipaddress.IPv4Network | None:
    """A random ``/prefix`` (24 to 30) in ``10.200-249.x.x`` that overlaps no route of this
    machine, in any table; None if :data:`TRIES` candidates all did."""
    if not 24 <= prefix <= 30:
        raise ValueError(f"prefix: {prefix} is not 24 to 30")
    taken = routed_networks()
    size = 2 ** (32 - prefix)
    for _ in range(TRIES):
        random = int.from_bytes(os.urandom(2))
        candidate = ipaddress.IPv4Network(
            f"10.{200 + random % 50}.{random >> 8}.{size * (random % (256 // size))}/{prefix}"
        )
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    return None


def host_namespace(
    namespace: str, outside: str, inside: str, link: ipaddress.IPv4Network
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """Make ``namespace`` with its loopback up, joined to this one by the veth pair
    ``outside`` (here) and ``inside`` (there) on the /30 ``link``; returns (this side's
    address, the host's). The pair goes when the namespace is deleted."""
    if link.prefixlen != 30:
        raise ValueError(f"link: {link} is not a /30")
    here, there = link.network_address + 1, link.network_address + 2
    ip("netns", "add", namespace)
    ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", namespace)
    ip("addr", "add", f"{here}/30", "dev", outside)
    ip("link", "set", outside, "up")
    ip("-n", namespace, "addr", "add", f"{there}/30", "dev", inside)
    ip("-n", namespace, "link", "set", inside, "up")
    ip("-n", namespace, "link", "set", "lo", "up")
    return here, there
