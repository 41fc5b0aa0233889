"""Which client a request is limited as: proxies, X-Forwarded-For, IPv6 prefixes."""

from __future__ import annotations

import pytest

from ctm_pbx.core.client_address import LOOPBACK, client_key, lease_client, parse_networks

PROXIES = parse_networks([*LOOPBACK, "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("remote", "forwarded", "key"),
    [
        ("198.51.100.7", None, "198.51.100.7"),  # no proxy
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),  # not from a proxy: header ignored
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),  # our proxy says who it saw
        ("127.0.0.1", "1.2.3.4, 203.0.113.9", "203.0.113.9"),  # client forged 1.2.3.4
        ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # two proxies of ours
        ("127.0.0.1", "10.1.2.3", "10.1.2.3"),  # only proxies: the farthest one
        ("127.0.0.1", "garbage, 203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "203.0.113.9, garbage", "127.0.0.1"),  # a proxy of ours wrote garbage
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "203.0.113.9:51234", "203.0.113.9"),
        ("127.0.0.1", "[2001:db8:1:2::7]:443", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::7", None, "2001:db8:1:2::/64"),  # one subscriber's /64, one bucket
        ("2001:db8:1:2:aaaa::1", None, "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", None, "2001:db8:1:3::/64"),
        ("::ffff:198.51.100.7", None, "198.51.100.7"),  # IPv4 on a dual-stack socket
        ("64:ff9b::c633:6407", None, "198.51.100.7"),  # IPv4 through NAT64: not one bucket
        ("64:ff9b::c633:6408", None, "198.51.100.8"),
        ("::1", "2001:db8::5", "2001:db8::/64"),
        (None, "203.0.113.9", "unknown"),
        ("not-an-ip", None, "not-an-ip"),
    ],
)
def test_client_key(remote, forwarded, key) -> None:
    assert client_key(remote, forwarded, PROXIES) == key


def test_no_trusted_proxies_means_the_socket_address() -> None:
    assert client_key("127.0.0.1", "203.0.113.9", ()) == "127.0.0.1"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "example.com", "10.0.0"])
def test_bad_networks_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        parse_networks([bad])


@pytest.mark.parametrize(
    ("key", "client"),
    [
        ("198.51.100.7", "198.51.100.7"),  # an IPv4 client is its address
        ("2001:db8:1:2::/64", "2001:db8:1::/48"),  # every /64 of a /48: one client
        ("2001:db8:1:ffff::/64", "2001:db8:1::/48"),
        ("2001:db8:2::/64", "2001:db8:2::/48"),
        ("unknown", "unknown"),
    ],
)
def test_lease_client(key, client) -> None:
    assert lease_client(key) == client
