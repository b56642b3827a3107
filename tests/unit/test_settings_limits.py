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
