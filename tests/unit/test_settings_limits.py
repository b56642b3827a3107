"""Limits that protect the service cannot be switched off by a bad value: start fails instead."""

from __future__ import annotations

import pytest

from chalicelib.settings import load_settings


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_verify_allowance_below_one_fails_at_start(monkeypatch, value):
    monkeypatch.setenv("IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE", value)
    with pytest.raises(ValueError, match="IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE"):
        load_settings()


def test_the_verify_allowance_defaults_to_ten_a_minute(monkeypatch):
    monkeypatch.delenv("IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE", raising=False)
    assert load_settings().verify_account_per_minute == 10


@pytest.mark.parametrize("value", ["0", "1048576", "5242879"])
def test_a_download_window_below_s3s_smallest_part_fails_at_start(monkeypatch, value):
    monkeypatch.setenv("IMAPLESS_DOWNLOAD_CHUNK_BYTES", value)
    with pytest.raises(ValueError, match="IMAPLESS_DOWNLOAD_CHUNK_BYTES must be at least 5242880"):
        load_settings()


def test_the_imap_read_caps_default_to_what_real_mail_needs(monkeypatch):
    for name in ("LINE", "LITERAL", "RESPONSE", "BODY_RESPONSE"):
        monkeypatch.delenv(f"IMAPLESS_IMAP_MAX_{name}_BYTES", raising=False)
    settings = load_settings()
    # a 50 MB message fetched whole is one literal in a content FETCH's answer
    assert settings.imap_max_literal_bytes > 50_000_000 and settings.imap_max_body_response_bytes > 50_000_000
    # imaplib's own line cap was 1,000,000: no answer that passed before is refused now
    assert settings.imap_max_line_bytes >= 1_000_000


@pytest.mark.parametrize(("name", "value", "message"), [
    ("IMAPLESS_IMAP_MAX_LINE_BYTES", "0", "IMAPLESS_IMAP_MAX_LINE_BYTES must be at least 8192"),
    ("IMAPLESS_IMAP_MAX_LITERAL_BYTES", "-1", "IMAPLESS_IMAP_MAX_LITERAL_BYTES must be at least 65536"),
    # an answer must hold its longest line; a content FETCH's answer its largest literal
    ("IMAPLESS_IMAP_MAX_RESPONSE_BYTES", "1048576", "IMAPLESS_IMAP_MAX_RESPONSE_BYTES must be at least 16777216"),
    ("IMAPLESS_IMAP_MAX_BODY_RESPONSE_BYTES", "1048576",
     "IMAPLESS_IMAP_MAX_BODY_RESPONSE_BYTES must be at least 67108864"),
])
def test_an_imap_read_cap_that_cannot_work_fails_at_start(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        load_settings()
