"""Envelope encryption of secrets at rest (mailbox passwords, webhook secrets).

Each record gets its own 256-bit data key; the secret is sealed with AES-256-GCM under
that key, and the data key itself is stored only in wrapped form:

    secret --AES-GCM(data key, aad=context)--> ciphertext
    data key --wrap(master key, context)-----> wrapped key      (KMS on AWS, a key file locally)
    stored: {"v": 1, "p": provider, "k": wrapped key, "n": nonce, "c": ciphertext}

Invariants:
- The encryption context (e.g. ``{"account": "alice"}``) is bound twice: as the KMS
  encryption context of the data key and as AES-GCM associated data. A sealed value
  copied onto another account's record fails to open instead of leaking.
- Plaintext never leaves this module except as the return value of :func:`open_secret`;
  it is never logged.
- Providers: ``kms`` (GenerateDataKey/Decrypt with the stack's key) and ``local`` (the
  data key wrapped with AES-GCM under a 32-byte key file in the data dir, created 0600 on
  first use). moto's KMS keys do not survive a restart, so the local runner uses ``local``.

Failure modes: a missing or wrong key, or a tampered record, raise :class:`SecretError`
(never a half-decrypted value).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib import aws_clients
from chalicelib.settings import get_settings

FORMAT_VERSION = 1
NONCE_BYTES = 12
DATA_KEY_CACHE_SIZE = 256


class SecretError(Exception):
    """A sealed secret could not be opened (wrong key, wrong context, tampering)."""


class KeyProvider(Protocol):
    name: str

    def new_data_key(self, context: dict[str, str]) -> tuple[bytes, bytes]:
        """Return (plaintext data key, wrapped data key)."""

    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        """Return the plaintext data key of a wrapped one."""


def _aad(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


class KmsKeyProvider:
    """Data keys from AWS KMS; Decrypt results are cached per warm process.

    The cache keeps a Lambda that serves many requests for one account from calling KMS
    on each of them; entries are keyed by wrapped key *and* context, so a wrong context
    can never be answered from the cache.
    """

    name = "kms"

    def __init__(self, key_id: str, client=None) -> None:
        self._key_id = key_id
        self._client = client
        self._cache: OrderedDict[tuple[bytes, bytes], bytes] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def client(self):
        if self._client is None:
            self._client = aws_clients.client("kms")
        return self._client

    def new_data_key(self, context: dict[str, str]) -> tuple[bytes, bytes]:
        answer = self.client.generate_data_key(KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=context)
        return answer["Plaintext"], answer["CiphertextBlob"]

    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        cache_key = (wrapped, _aad(context))
        with self._lock:
            if cache_key in self._cache:
                self._cache.move_to_end(cache_key)
                return self._cache[cache_key]
        try:
            plaintext = self.client.decrypt(CiphertextBlob=wrapped, EncryptionContext=context)["Plaintext"]
        except self.client.exceptions.InvalidCiphertextException as exc:
            raise SecretError("the data key does not decrypt with this context") from exc
        with self._lock:
            self._cache[cache_key] = plaintext
            while len(self._cache) > DATA_KEY_CACHE_SIZE:
                self._cache.popitem(last=False)
        return plaintext


class LocalKeyProvider:
    """Data keys wrapped under a key file (the local runner's stand-in for KMS)."""

    name = "local"

    def __init__(self, key_file: Path) -> None:
        self._key_file = key_file
        self._master: bytes | None = None
        self._lock = threading.Lock()

    def _master_key(self) -> bytes:
        with self._lock:
            if self._master is None:
                self._master = _load_or_create_key_file(self._key_file)
            return self._master

    def new_data_key(self, context: dict[str, str]) -> tuple[bytes, bytes]:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        return data_key, nonce + AESGCM(self._master_key()).encrypt(nonce, data_key, _aad(context))

    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        try:
            return AESGCM(self._master_key()).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad(context))
        except InvalidTag as exc:
            raise SecretError("the data key does not decrypt with this key file and context") from exc


def _load_or_create_key_file(path: Path) -> bytes:
    if path.exists():
        key = path.read_bytes()
        if len(key) != 32:
            raise SecretError(f"key file {path} must hold exactly 32 bytes")
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load_or_create_key_file(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return key


@functools.lru_cache(maxsize=1)
def get_key_provider() -> KeyProvider:
    """The process-wide provider chosen by ``IMAPLESS_KEY_PROVIDER``."""
    settings = get_settings()
    if settings.key_provider == "local":
        return LocalKeyProvider(settings.local_key_file)
    if settings.key_provider == "kms":
        return KmsKeyProvider(settings.kms_key_id)
    raise ValueError(f"IMAPLESS_KEY_PROVIDER must be 'kms' or 'local', not {settings.key_provider!r}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def seal_secret(plaintext: str, context: dict[str, str], provider: KeyProvider | None = None) -> str:
    """Encrypt ``plaintext`` bound to ``context``; returns a JSON string safe to store."""
    provider = provider or get_key_provider()
    data_key, wrapped = provider.new_data_key(context)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext.encode("utf-8"), _aad(context))
    record = {"v": FORMAT_VERSION, "p": provider.name, "k": _b64(wrapped), "n": _b64(nonce), "c": _b64(ciphertext)}
    return json.dumps(record, separators=(",", ":"))


def open_secret(sealed: str, context: dict[str, str], provider: KeyProvider | None = None) -> str:
    """Decrypt a value made by :func:`seal_secret` with the same context."""
    provider = provider or get_key_provider()
    try:
        record = json.loads(sealed)
        if record.get("v") != FORMAT_VERSION:
            raise SecretError(f"unknown sealed format {record.get('v')!r}")
        if record.get("p") != provider.name:
            raise SecretError(f"sealed with provider {record.get('p')!r}, configured {provider.name!r}")
        wrapped, nonce, ciphertext = (base64.b64decode(record[k]) for k in ("k", "n", "c"))
    except (ValueError, KeyError, TypeError) as exc:
        raise SecretError("malformed sealed value") from exc
    data_key = provider.unwrap(wrapped, context)
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, _aad(context)).decode("utf-8")
    except InvalidTag as exc:
        raise SecretError("sealed value does not match its context") from exc
