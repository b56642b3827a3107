"""The outbound address policy, as a table of addresses and verdicts."""

from __future__ import annotations

import pytest

from chalicelib.security.netguard import HostNotAllowedError, HostNotFoundError, address_refusal, resolve_allowed

ALWAYS_REFUSED = ["169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254",
                  "0.0.0.0", "::", "224.0.0.1", "100.100.100.200"]
PRIVATE = ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.10", "172.16.5.4", "fd12::1", "::ffff:127.0.0.1"]
PUBLIC = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"]


@pytest.mark.parametrize("address", ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_metadata_and_link_local_are_always_refused(address, allow_private):
    assert address_refusal(address, allow_private) is not None


@pytest.mark.parametrize("address", PRIVATE)
def test_private_and_loopback_need_the_opt_in(address):
    assert address_refusal(address, allow_private=False) is not None
    assert address_refusal(address, allow_private=True) is None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    assert address_refusal(address, allow_private=False) is None


def test_resolving_localhost_is_refused_without_opt_in():
    with pytest.raises(HostNotAllowedError) as info:
        resolve_allowed("localhost", 143, allow_private=False)
    assert "IMAPLESS_ALLOW_PRIVATE_NETWORKS" in str(info.value)


def test_resolving_localhost_with_opt_in_returns_checked_addresses():
    addresses = resolve_allowed("localhost", 143, allow_private=True)
    assert addresses and all(a.address in {"127.0.0.1", "::1"} for a in addresses)


def test_unresolvable_name_is_host_not_found():
    with pytest.raises(HostNotFoundError):
        resolve_allowed("no-such-host.invalid", 143, allow_private=True)
