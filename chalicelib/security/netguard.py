"""Outbound address policy: which hosts the service may open connections to (SSRF guard).

Users hand us host names for their mail servers and webhook URLs. A host that resolves to
the cloud metadata service or another internal address would let a caller reach the
deployment's own network through us, so every address is looked up in one table of named
ranges (:data:`IPV4_RANGES`, :data:`IPV6_RANGES`) with one of three verdicts:

- ``ALWAYS``: metadata, link-local, unspecified, multicast, documentation, benchmarking,
  reserved and Teredo addresses: refused whatever the settings say;
- ``PRIVATE``: loopback, RFC 1918, carrier-grade NAT, unique-local and site-local: refused
  unless ``IMAPLESS_ALLOW_PRIVATE_NETWORKS`` is true (the local runner's default, so a
  developer can point at a local Dovecot);
- ``EMBEDDED``: IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
  IPv4-translated, NAT64, 6to4): the verdict of the embedded IPv4 address. A connection
  to them ends up at that IPv4 address (directly, through a NAT64 gateway or a 6to4
  relay), so ``::ffff:169.254.169.254`` is the metadata service.

The table, not the stdlib's ``is_private``/``is_global``, decides: those tables changed
between Python releases (3.11.10, 3.12.4 and 3.13 each moved ranges), and the answer must
not depend on the runtime. Outside the table an IPv6 address must be global unicast
(2000::/3, RFC 4291); any IPv4 address outside it is public.

Invariant: the caller resolves once with :func:`resolve_allowed` and connects to the
returned addresses only. Connecting by name after the check would reopen the hole
(DNS rebinding: the second lookup may answer differently).
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass

from chalicelib.settings import get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Verdict(enum.Enum):
    ALWAYS = "always refused"
    PRIVATE = "refused unless private networks are allowed"
    EMBEDDED = "the verdict of the embedded IPv4 address"


@dataclass(frozen=True)
class NamedRange:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    verdict: Verdict
    what: str  # completes "<address> is ..." in refusals


def _range(cidr: str, verdict: Verdict, what: str) -> NamedRange:
    return NamedRange(ipaddress.ip_network(cidr), verdict, what)


ALWAYS, PRIVATE, EMBEDDED = Verdict.ALWAYS, Verdict.PRIVATE, Verdict.EMBEDDED

# Most specific first: the first range that contains an address decides.
IPV4_RANGES: tuple[NamedRange, ...] = (
    _range("100.100.100.200/32", ALWAYS, "a cloud metadata address (Alibaba Cloud)"),
    _range("0.0.0.0/8", ALWAYS, "not a unicast address (\"this network\", RFC 1122)"),
    _range("10.0.0.0/8", PRIVATE, "a private address (RFC 1918)"),
    _range("100.64.0.0/10", PRIVATE, "a carrier-grade NAT address (RFC 6598; VPC secondary ranges, EKS pods)"),
    _range("127.0.0.0/8", PRIVATE, "a loopback address (RFC 1122)"),
    _range("169.254.0.0/16", ALWAYS, "a link-local address (RFC 3927; cloud metadata at 169.254.169.254)"),
    _range("172.16.0.0/12", PRIVATE, "a private address (RFC 1918)"),
    _range("192.0.0.0/24", ALWAYS, "a reserved address (IETF protocol assignments, RFC 6890)"),
    _range("192.0.2.0/24", ALWAYS, "a documentation address (TEST-NET-1, RFC 5737)"),
    _range("192.88.99.0/24", ALWAYS, "a reserved address (former 6to4 relay anycast, RFC 7526)"),
    _range("192.168.0.0/16", PRIVATE, "a private address (RFC 1918)"),
    _range("198.18.0.0/15", ALWAYS, "a benchmarking address (RFC 2544)"),
    _range("198.51.100.0/24", ALWAYS, "a documentation address (TEST-NET-2, RFC 5737)"),
    _range("203.0.113.0/24", ALWAYS, "a documentation address (TEST-NET-3, RFC 5737)"),
    _range("224.0.0.0/4", ALWAYS, "not a unicast address (multicast, RFC 5771)"),
    _range("240.0.0.0/4", ALWAYS, "a reserved address (RFC 1112; includes broadcast 255.255.255.255)"),
)

IPV6_RANGES: tuple[NamedRange, ...] = (
    _range("::/128", ALWAYS, "not a unicast address (unspecified, RFC 4291)"),
    _range("::1/128", PRIVATE, "a loopback address (RFC 4291)"),
    _range("::ffff:0:0/96", EMBEDDED, "an IPv4-mapped address (RFC 4291)"),
    _range("::ffff:0:0:0/96", EMBEDDED, "an IPv4-translated address (RFC 2765)"),
    _range("::/96", EMBEDDED, "an IPv4-compatible address (deprecated, RFC 4291)"),
    _range("64:ff9b::/96", EMBEDDED, "a NAT64 address (RFC 6052)"),
    # Where a local-use NAT64 prefix puts the IPv4 address depends on the prefix length
    # the operator chose (RFC 6052 2.2), so it cannot be checked: refuse the block.
    _range("64:ff9b:1::/48", ALWAYS, "a local-use NAT64 address (RFC 8215)"),
    _range("100::/64", ALWAYS, "a discard-only address (RFC 6666)"),
    # Teredo hides the client's IPv4 address (bits inverted) behind a relay: refuse it all.
    _range("2001::/32", ALWAYS, "a Teredo address (RFC 4380)"),
    _range("2001:2::/48", ALWAYS, "a benchmarking address (RFC 5180)"),
    _range("2001:10::/28", ALWAYS, "a reserved address (ORCHID, RFC 4843)"),
    _range("2001:20::/28", ALWAYS, "a reserved address (ORCHIDv2, RFC 7343)"),
    _range("2001:db8::/32", ALWAYS, "a documentation address (RFC 3849)"),
    _range("2002::/16", EMBEDDED, "a 6to4 address (RFC 3056)"),
    _range("fd00:ec2::254/128", ALWAYS, "a cloud metadata address (AWS IPv6 instance metadata)"),
    _range("fc00::/7", PRIVATE, "a unique local address (RFC 4193)"),
    _range("fe80::/10", ALWAYS, "a link-local address (RFC 4291)"),
    _range("fec0::/10", PRIVATE, "a site-local address (deprecated, RFC 3879)"),
    _range("ff00::/8", ALWAYS, "not a unicast address (multicast, RFC 4291)"),
)

GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")  # RFC 4291 2.4: all else is reserved or special

_PRIVATE_HINT = " (set IMAPLESS_ALLOW_PRIVATE_NETWORKS=true to allow it)"


class HostNotFoundError(Exception):
    """The name does not resolve."""


class HostNotAllowedError(Exception):
    """Every address of the host is refused by the policy."""


@dataclass(frozen=True)
class ResolvedAddress:
    family: int
    address: str


def classify(ip: IPAddress) -> NamedRange | None:
    """The first named range containing ``ip``, or None (public IPv4, or any other IPv6)."""
    table = IPV4_RANGES if ip.version == 4 else IPV6_RANGES
    return next((named for named in table if ip in named.network), None)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    """The IPv4 address an ``EMBEDDED`` range carries: the low 32 bits, or bits 16-47 for 6to4."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why ``address`` may not be connected to, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    named = classify(ip)
    if named is not None and named.verdict is EMBEDDED and isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        reason = address_refusal(str(inner), allow_private)
        return None if reason is None else f"{named.what} of {inner}, which is {reason}"
    if named is None:
        if ip.version == 6 and ip not in GLOBAL_UNICAST_V6:
            return "a reserved address (outside global unicast 2000::/3, RFC 4291)"
        return None
    if named.verdict is PRIVATE:
        return None if allow_private else named.what + _PRIVATE_HINT
    return named.what


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
