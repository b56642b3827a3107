"""Webhook URL rules: syntax, and the outbound address policy for literal addresses."""

from __future__ import annotations

import pytest

from chalicelib.settings import reset_settings
from chalicelib.webhooks.client import WebhookUrlError, check_url_allowed, check_url_syntax


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/imapless", "http://example.com:8080/a?b=c", "https://[2001:db8::1]/x",
])
def test_absolute_http_urls_are_accepted(url):
    assert check_url_syntax(url) == url


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.com/x", "http:// or https://"),
    ("example.com/hook", "http:// or https://"),
    ("https:///path-only", "no host"),
    ("https://example.com/x#part", "fragment"),
    ("https://example.com:99999/", "not a valid URL"),
    ("https://example.com:0/", "port 0"),
    ("https://user:secret@example.com/", "user:password@"),
    ("https://example.com/" + "a" * 2100, "longer than"),
])
def test_malformed_urls_are_refused_with_a_reason(url, reason):
    with pytest.raises(WebhookUrlError, match=reason):
        check_url_syntax(url)


@pytest.fixture
def private_networks(monkeypatch):
    def set_allowed(allowed: bool) -> None:
        monkeypatch.setenv("IMAPLESS_ALLOW_PRIVATE_NETWORKS", "true" if allowed else "false")
        reset_settings()

    yield set_allowed
    monkeypatch.undo()
    reset_settings()


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
    "http://[fe80::1]/", "http://0.0.0.0/", "http://[::ffff:169.254.169.254]/",
])
@pytest.mark.parametrize("allowed", [True, False])
def test_metadata_and_link_local_addresses_are_always_refused(private_networks, url, allowed):
    private_networks(allowed)
    with pytest.raises(WebhookUrlError) as caught:
        check_url_allowed(url)
    assert caught.value.code == "HostNotAllowed"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/", "http://10.1.2.3/", "http://[::1]/", "http://192.168.1.5/"])
def test_private_and_loopback_addresses_need_the_setting(private_networks, url):
    private_networks(False)
    with pytest.raises(WebhookUrlError) as caught:
        check_url_allowed(url)
    assert caught.value.code == "HostNotAllowed"
    private_networks(True)
    assert check_url_allowed(url) == url
