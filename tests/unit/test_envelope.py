"""Envelope encryption with the local key provider (the KMS provider is tested against moto)."""

from __future__ import annotations

import json

import pytest

from chalicelib.security.envelope import LocalKeyProvider, SecretError, open_secret, seal_secret


@pytest.fixture
def provider(tmp_path):
    return LocalKeyProvider(tmp_path / "keys" / "master.key")


def test_round_trip_restores_the_secret(provider):
    sealed = seal_secret("hunter2 ünïcode", {"account": "alice"}, provider)
    assert open_secret(sealed, {"account": "alice"}, provider) == "hunter2 ünïcode"


def test_sealed_value_contains_no_plaintext(provider):
    sealed = seal_secret("hunter2-very-secret", {"account": "alice"}, provider)
    assert "hunter2" not in sealed
    assert json.loads(sealed)["p"] == "local"


def test_each_seal_uses_a_fresh_data_key_and_nonce(provider):
    first = json.loads(seal_secret("same", {"account": "a"}, provider))
    second = json.loads(seal_secret("same", {"account": "a"}, provider))
    assert first["k"] != second["k"] and first["n"] != second["n"] and first["c"] != second["c"]


def test_value_copied_to_another_account_does_not_open(provider):
    sealed = seal_secret("secret", {"account": "alice"}, provider)
    with pytest.raises(SecretError):
        open_secret(sealed, {"account": "mallory"}, provider)


def test_tampered_ciphertext_does_not_open(provider):
    record = json.loads(seal_secret("secret", {"account": "alice"}, provider))
    record["c"] = record["c"][:-4] + ("AAAA" if not record["c"].endswith("AAAA") else "BBBB")
    with pytest.raises(SecretError):
        open_secret(json.dumps(record), {"account": "alice"}, provider)


def test_key_file_is_created_private_and_reused(tmp_path):
    key_file = tmp_path / "master.key"
    sealed = seal_secret("secret", {"account": "a"}, LocalKeyProvider(key_file))
    assert key_file.stat().st_mode & 0o777 == 0o600
    # A new process (new provider object) reading the same file opens old values.
    assert open_secret(sealed, {"account": "a"}, LocalKeyProvider(key_file)) == "secret"


def test_another_key_file_cannot_open(tmp_path):
    sealed = seal_secret("secret", {"account": "a"}, LocalKeyProvider(tmp_path / "one.key"))
    with pytest.raises(SecretError):
        open_secret(sealed, {"account": "a"}, LocalKeyProvider(tmp_path / "two.key"))


def test_malformed_value_is_a_secret_error(provider):
    with pytest.raises(SecretError):
        open_secret("not json", {"account": "a"}, provider)
