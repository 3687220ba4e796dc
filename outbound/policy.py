"""Which addresses an outbound request may connect to: plain functions over plain data.

An allow-list, not a deny-list: only globally routable addresses (`ipaddress.is_global`),
less the transition ranges that embed another address (6to4, NAT64, Teredo, IPv4-compatible
IPv6, the 6to4 relay anycast) and multicast. Operators may open loopback, the private
ranges, named networks or named hosts by setting (OUTBOUND_*)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# `is_global` still says True for these (Python 3.11), yet each can lead somewhere else:
# a 6to4, NAT64 or IPv4-compatible address embeds an IPv4 address of any kind.
EMBEDDING_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.88.99.0/24",  # 6to4 relay anycast
        "2002::/16",  # 6to4
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local use
        "2001::/32",  # Teredo
        "::/96",  # IPv4-compatible IPv6 (deprecated)
    )
)
# What OUTBOUND_ALLOW_PRIVATE opens: the RFC 1918 ranges and IPv6 unique-local addresses.
PRIVATE_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


class DestinationRefused(Exception):
    """The request would reach an address the policy does not allow (or no address)."""


@dataclass(frozen=True)
class Policy:
    allow_loopback: bool = False
    allow_private: bool = False
    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    def with_hosts(self, *hosts: str) -> Policy:
        """This policy, also allowing these host names (an operator's configured endpoint)."""
        extra = {h.lower().rstrip(".") for h in hosts if h}
        return Policy(self.allow_loopback, self.allow_private, self.networks, self.hosts | extra)

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def refusal(self, address: Address) -> str | None:
        """None when `address` may be reached, else the kind of address it is."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in self.networks):
            return None
        if address.is_loopback:
            return None if self.allow_loopback else "loopback"
        if address.is_link_local:
            return "link-local"
        if address.is_multicast:
            return "multicast"
        if any(address in network for network in EMBEDDING_NETWORKS):
            return "address-embedding"
        if address.is_unspecified or address.is_reserved:
            return "reserved"
        if any(address in network for network in PRIVATE_NETWORKS):
            return None if self.allow_private else "private"
        if not address.is_global:
            return "non-global"
        return None

    def check(self, host: str, addresses: list[Address]) -> None:
        """Raise DestinationRefused unless every address `host` resolved to is allowed (a
        name that answers one public and one internal address is refused whole)."""
        if not addresses:
            raise DestinationRefused(f"{host} has no address")
        if self.allows_host(host):
            return
        for address in addresses:
            reason = self.refusal(address)
            if reason:
                raise DestinationRefused(
                    f"requests to {reason} addresses are not allowed ({host}: {address})"
                )


def check_url(url: str) -> None:
    """Only http(s) URLs with a host: raised before anything is resolved."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise DestinationRefused(f"malformed URL {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused(f"only http and https URLs with a host are allowed, not {url!r}")
