"""The outbound address policy, as tables of addresses and verdicts.

Every named range is exercised in each form that reaches it: the IPv4 address itself and
its IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 and 6to4 IPv6 spellings. The
verdicts come from the module's own table, so they are the same on every Python version
(the stdlib's ``is_private`` moved ranges between 3.11 and 3.13).
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from chalicelib.security.netguard import (
    IPV4_RANGES,
    IPV6_RANGES,
    HostNotAllowedError,
    HostNotFoundError,
    Verdict,
    address_refusal,
    resolve_allowed,
)

# One address inside each refused IPv4 range, and the verdict expected for it.
ALWAYS_REFUSED_V4 = ["169.254.169.254", "169.254.0.1", "100.100.100.200", "0.0.0.0", "0.1.2.3", "224.0.0.1",
                     "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.0.8", "192.0.2.1", "198.51.100.7",
                     "203.0.113.9", "198.18.0.1", "198.19.255.254", "192.88.99.1"]
PRIVATE_V4 = ["127.0.0.1", "127.255.255.254", "10.1.2.3", "192.168.0.10", "172.16.5.4", "172.31.255.1",
              "100.64.0.1", "100.127.255.254", "100.100.100.1"]
PUBLIC_V4 = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "172.32.0.1",
             "192.0.3.1", "198.20.0.1", "223.255.255.254"]

ALWAYS_REFUSED_V6 = ["::", "fe80::1", "febf::1", "fd00:ec2::254", "ff02::1", "ff05::1:3", "2001:db8::1",
                     "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, whatever it hides
                     "2001:2::1", "2001:10::1", "2001:20::1", "100::1", "64:ff9b:1::a00:1", "64:ff9b:1:ffff::1",
                     "::2:0:0:1", "200::1", "4000::1", "e000::1", "fe00::1"]
PRIVATE_V6 = ["::1", "fd12::1", "fc00::1", "fec0::1", "feff::1"]
PUBLIC_V6 = ["2606:2800:220:1:248:1893:25c8:1946", "2a00:1450:4001:80b::200e", "2001:4860:4860::8888"]


def ipv6_forms(ipv4: str) -> dict[str, str]:
    """Every IPv6 spelling that carries ``ipv4`` and ends up there when connected to."""
    value = int(ipaddress.IPv4Address(ipv4))
    return {
        "mapped": str(ipaddress.IPv6Address((0xFFFF << 32) | value)),              # ::ffff:a.b.c.d
        "compatible": str(ipaddress.IPv6Address(value)),                          # ::a.b.c.d
        "translated": str(ipaddress.IPv6Address((0xFFFF << 48) | value)),         # ::ffff:0:a.b.c.d
        "nat64": str(ipaddress.IPv6Address((0x64FF9B << 96) | value)),            # 64:ff9b::a.b.c.d
        "6to4": str(ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | 1)),  # 2002:AABB:CCDD::1
    }


def embedded(addresses: list[str]) -> list[tuple[str, str]]:
    return [(form, spelled) for address in addresses for form, spelled in ipv6_forms(address).items()
            # ::0.0.0.0 and ::0.0.0.1 are the unspecified and loopback addresses, tested as such
            if not (form == "compatible" and int(ipaddress.IPv4Address(address)) <= 1)]


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("address", ALWAYS_REFUSED_V4 + ALWAYS_REFUSED_V6)
def test_metadata_link_local_and_special_addresses_are_always_refused(address, allow_private):
    # Given an address no deployment may reach / When it is checked / Then it is refused
    assert address_refusal(address, allow_private) is not None


@pytest.mark.parametrize("address", PRIVATE_V4 + PRIVATE_V6)
def test_private_and_loopback_need_the_opt_in(address):
    refusal = address_refusal(address, allow_private=False)
    assert refusal is not None and "IMAPLESS_ALLOW_PRIVATE_NETWORKS" in refusal
    assert address_refusal(address, allow_private=True) is None


@pytest.mark.parametrize("address", PUBLIC_V4 + PUBLIC_V6)
def test_public_addresses_are_allowed(address):
    assert address_refusal(address, allow_private=False) is None


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(("form", "address"), embedded(ALWAYS_REFUSED_V4))
def test_ipv6_forms_of_an_always_refused_ipv4_address_are_refused(form, address, allow_private):
    refusal = address_refusal(address, allow_private)
    assert refusal is not None, f"{form} form {address} was allowed"


@pytest.mark.parametrize(("form", "address"), embedded(PRIVATE_V4))
def test_ipv6_forms_of_a_private_ipv4_address_need_the_opt_in(form, address):
    assert address_refusal(address, allow_private=False) is not None, f"{form} form {address} was allowed"
    assert address_refusal(address, allow_private=True) is None


@pytest.mark.parametrize(("form", "address"), embedded(PUBLIC_V4))
def test_ipv6_forms_of_a_public_ipv4_address_are_allowed(form, address):
    assert address_refusal(address, allow_private=False) is None, f"{form} form {address} was refused"


def test_a_refusal_of_an_embedded_form_names_the_ipv4_address_inside():
    refusal = address_refusal("64:ff9b::a9fe:a9fe", allow_private=True)
    assert refusal is not None and "NAT64" in refusal and "169.254.169.254" in refusal


@pytest.mark.parametrize("named", IPV4_RANGES + IPV6_RANGES, ids=lambda named: str(named.network))
def test_every_named_range_says_what_it_is_and_which_rfc(named):
    assert named.what and ("RFC" in named.what or "metadata" in named.what)


@pytest.mark.parametrize("named", [named for named in IPV4_RANGES + IPV6_RANGES if named.verdict is Verdict.ALWAYS],
                         ids=lambda named: str(named.network))
@pytest.mark.parametrize("allow_private", [False, True])
def test_both_ends_of_every_always_refused_range_are_refused(named, allow_private):
    for address in (named.network[0], named.network[-1]):
        assert address_refusal(str(address), allow_private) is not None


def test_a_zone_index_does_not_hide_a_link_local_address():
    assert address_refusal("fe80::1%eth0", allow_private=True) is not None


def test_resolving_localhost_is_refused_without_opt_in():
    with pytest.raises(HostNotAllowedError) as info:
        resolve_allowed("localhost", 143, allow_private=False)
    assert "IMAPLESS_ALLOW_PRIVATE_NETWORKS" in str(info.value)


def test_resolving_localhost_with_opt_in_returns_checked_addresses():
    addresses = resolve_allowed("localhost", 143, allow_private=True)
    assert addresses and all(a.address in {"127.0.0.1", "::1"} for a in addresses)


def test_a_name_answering_public_and_refused_addresses_yields_only_the_public_ones(monkeypatch):
    # Given a resolver that mixes a public address with the metadata service and its mapped form
    def getaddrinfo(host, port, type):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:a9fe:a9fe", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    # When it is resolved through the policy
    addresses = resolve_allowed("rebinding.example", 143, allow_private=True)

    # Then only the public address is left to connect to
    assert [a.address for a in addresses] == ["93.184.216.34"]


def test_unresolvable_name_is_host_not_found():
    with pytest.raises(HostNotFoundError):
        resolve_allowed("no-such-host.invalid", 143, allow_private=True)
