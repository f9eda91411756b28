"""The test hosts' networks (tests/network_namespaces.py): a subnet of the asked size that
no route of this machine touches, and a clear refusal of a size it does not make."""

from __future__ import annotations

import ipaddress
import shutil

import pytest

from tests import network_namespaces


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(28, id="the-nemesis-hosts-/28"),
        pytest.param(29, id="the-two-host-test-/29"),
        pytest.param(30, id="one-link-/30"),
    ],
)
def test_a_subnet_is_of_the_asked_size_in_10_200_to_249_and_touches_no_route(
    prefix: int,
) -> None:
    if not shutil.which("ip"):
        pytest.fail("the test hosts need iproute2's `ip`: apt-get install iproute2")
    routes = network_namespaces.routed_networks()
    # Loopback is routed in the local table on every Linux machine: the routes were read.
    assert ipaddress.IPv4Network("127.0.0.0/8") in routes
    for _ in range(20):
        subnet = network_namespaces.unrouted_subnet(prefix)
        assert subnet is not None
        assert subnet.prefixlen == prefix
        assert subnet.subnet_of(ipaddress.IPv4Network("10.192.0.0/10"))
        assert 200 <= subnet.network_address.packed[1] <= 249
        assert not any(subnet.overlaps(route) for route in routes), subnet


@pytest.mark.parametrize(
    "prefix", [pytest.param(23, id="too-large"), pytest.param(31, id="no-room-for-hosts")]
)
def test_a_size_outside_24_to_30_is_refused_by_name(prefix: int) -> None:
    with pytest.raises(ValueError, match=f"prefix: {prefix} is not 24 to 30"):
        network_namespaces.unrouted_subnet(prefix)
