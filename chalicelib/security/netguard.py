"""Outbound address policy: which hosts the service may open connections to (SSRF guard).

Users hand us host names for their mail servers (and later webhook URLs). A host that
resolves to the cloud metadata service or another link-local address would let a caller
read the instance's credentials through our error messages, so:

- link-local, metadata (169.254.0.0/16, fd00:ec2::254), unspecified, multicast and
  reserved addresses are always refused;
- loopback and private ranges are refused unless ``IMAPLESS_ALLOW_PRIVATE_NETWORKS`` is
  true (the local runner's default, so a developer can point at a local Dovecot).

Invariant: the caller resolves once with :func:`resolve_allowed` and connects to the
returned addresses only. Connecting by name after the check would reopen the hole
(DNS rebinding: the second lookup may answer differently).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from chalicelib.settings import get_settings

# AWS's IPv6 instance metadata endpoint lives outside the link-local range.
ALWAYS_REFUSED_NETWORKS = (
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)


class HostNotFoundError(Exception):
    """The name does not resolve."""


class HostNotAllowedError(Exception):
    """Every address of the host is refused by the policy."""


@dataclass(frozen=True)
class ResolvedAddress:
    family: int
    address: str


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why ``address`` may not be connected to, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in ALWAYS_REFUSED_NETWORKS):
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified or ip.is_multicast:
        return "not a unicast address"
    # Loopback before "reserved": Python counts ::1 as part of the reserved ::/8 block.
    if ip.is_loopback or ip.is_private:
        if allow_private:
            return None
        return "a loopback or private address (set IMAPLESS_ALLOW_PRIVATE_NETWORKS=true to allow it)"
    if ip.is_reserved:
        return "a reserved address"
    return None


def resolve_allowed(host: str, port: int, allow_private: bool | None = None) -> list[ResolvedAddress]:
    """Resolve ``host`` once and keep the addresses the policy allows, in resolver order."""
    if allow_private is None:
        allow_private = get_settings().allow_private_networks
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFoundError(f"the host name {host!r} does not resolve") from exc
    allowed: list[ResolvedAddress] = []
    refusals: list[str] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        address = sockaddr[0]
        if not isinstance(address, str):
            # Only a Python built without IPv6 support hands back (int, bytes) here: no address to vet.
            continue
        reason = address_refusal(address, allow_private)
        if reason:
            refusals.append(f"{address} is {reason}")
        elif ResolvedAddress(family, address) not in allowed:
            allowed.append(ResolvedAddress(family, address))
    if not allowed:
        raise HostNotAllowedError(f"connections to {host!r} are not allowed: " + "; ".join(refusals))
    return allowed
