"""Which client a web request comes from, for per-client limits (pure).

Behind a reverse proxy every request arrives from the proxy's address; the
client's own is the last address the trusted proxies added to
``X-Forwarded-For``. An IPv6 client can use a whole /64 (one subscriber's
prefix), so it is limited as one; an IPv4 client seen through NAT64 is
limited by its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.0/8", "::1/128")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix


def parse_networks(texts: Iterable[str]) -> tuple[IpNetwork, ...]:
    """``10.0.0.0/8``, ``192.0.2.7`` or ``::1``; raises ValueError on anything else."""
    return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in texts)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.7:51234"
        text = text.split(":")[0]
    try:
        addr = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _trusted(addr, trusted: tuple[IpNetwork, ...]) -> bool:  # noqa: ANN001 - an ip address
    return any(addr.version == net.version and addr in net for net in trusted)


def client_key(
    remote: str | None, forwarded_for: str | None, trusted: tuple[IpNetwork, ...]
) -> str:
    """The key a client is limited by: its IPv4 address, or its IPv6 /64."""
    addr = _address(remote or "")
    if addr is None:
        return remote or "unknown"
    if forwarded_for and _trusted(addr, trusted):
        # right to left: each hop appended the address it saw; the first one that is
        # not one of our proxies is the client (anything left of it could be forged)
        for hop in reversed(forwarded_for.split(",")):
            seen = _address(hop)
            if seen is None:
                break  # garbage: trust no further
            addr = seen
            if not _trusted(seen, trusted):
                break
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in NAT64:  # an IPv4 client through a NAT64 gateway: its own address
            return str(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def from_trusted_proxy(remote: str | None, trusted: tuple[IpNetwork, ...]) -> bool:
    """Whether a peer is one of ``trusted`` (its connections are many clients')."""
    addr = _address(remote or "")
    return addr is not None and _trusted(addr, trusted)


def lease_client(key: str) -> str:
    """The client a pool's lease cap counts by: an IPv4 address, or an IPv6 /48.

    ``key`` is ``client_key``'s answer. The rate limits count an IPv6 client by its
    /64, but anyone can get a /48 (65,536 /64s) for free from a tunnel broker, and
    a /56 (what ISPs hand a home) would still give such a client 256 caps; a /48 is
    one site by the registries' rules, so that is what may hold a few numbers at once.
    """
    if "/" not in key:
        return key
    try:
        net = ipaddress.ip_network(key, strict=False)
    except ValueError:
        return key
    if net.version == 6 and net.prefixlen > 48:
        return str(net.supernet(new_prefix=48))
    return key
