"""Standard Webhooks signatures (https://www.standardwebhooks.com): secrets, signing, headers.

Every webhook request carries::

    webhook-id:        the event id (the same on every retry and replay: receivers dedupe on it)
    webhook-timestamp: Unix seconds of this attempt (receivers reject stale ones: replay guard)
    webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")> [v1,<...> ...]

The key is the base64-decoded part of the secret ``whsec_<base64>``. Any Standard Webhooks
library (or the stdlib snippet in docs/webhooks.md) verifies our requests.

Every endpoint has its own secrets (:class:`EndpointSecrets`): the current one and, for a
while after a rotation, the one it replaced. During that overlap every request carries
both signatures, space-separated, so a receiver that still verifies with the old secret
and one that already has the new one both accept it::

    rotate at T:  current = new, previous = old until T + overlap (24 h by default)
    sign at t:    t < T + overlap:  "v1,<sig new> v1,<sig old>"
                  later:            "v1,<sig new>"

Stored (sealed) as the bare secret when there is no previous one, which is also the form
a secret had before rotation existed, else as JSON (:meth:`EndpointSecrets.to_text`).

EmailEngine's signature, for receivers written for EmailEngine (setting
``webhooksSignature: "emailengine"``): in addition to the three headers above::

    X-EE-Wh-Event-Id:  the event id (the same value as webhook-id)
    X-EE-Wh-Signature: base64url, unpadded, of HMAC-SHA256(service secret as UTF-8, body)

EmailEngine signs with one deployment-wide *service secret* (a plain string, 32 hex
characters when it generates it), used as the key as-is, not decoded; Node's
``digest('base64url')`` drops the ``=`` padding. There is no timestamp in what is signed,
so this style has no replay guard of its own: the Standard Webhooks headers still do.

Invariants: the secret and the key never leave this module except as the HMAC; nothing
here logs. A secret that is not ``whsec_`` + base64 of 24..64 bytes is refused with a
reason (:func:`parse_secret`), so a typo cannot produce signatures nobody can verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
GENERATED_SECRET_BYTES = 32
GENERATED_SERVICE_SECRET_BYTES = 16  # EmailEngine's: 16 random bytes, as 32 hex characters
MIN_SERVICE_SECRET_CHARS = 16
MAX_SERVICE_SECRET_CHARS = 256
EE_SIGNATURE_HEADER = "X-EE-Wh-Signature"
EE_EVENT_ID_HEADER = "X-EE-Wh-Event-Id"
SignatureStyle = Literal["standard", "emailengine"]  # emailengine: the Standard Webhooks headers plus EmailEngine's two
STANDARD_SIGNATURE: SignatureStyle = "standard"
EMAILENGINE_SIGNATURE: SignatureStyle = "emailengine"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
SIGNATURE_VERSION = "v1"
# What parse_secret accepts, as a JSON Schema pattern for the API document: whole base64
# groups of 24..63 bytes with an optional padded tail, at most 64 bytes in all.
_B64 = "[A-Za-z0-9+/]"
SECRET_PATTERN = (f"^{SECRET_PREFIX}(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
                  f"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$")


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode("ascii")


def parse_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ValueError (without the secret) when malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r} followed by base64")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the part after {SECRET_PREFIX!r} must be standard base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes (got {len(key)})")
    return key


@dataclass(frozen=True)
class EndpointSecrets:
    """One endpoint's secrets: ``current``, and ``previous`` while ``now < previous_until``."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def keys(self, now: datetime) -> tuple[bytes, ...]:
        """The keys to sign with at ``now``: the current one first."""
        if self.previous is not None and self.previous_until is not None and now < self.previous_until:
            return parse_secret(self.current), parse_secret(self.previous)
        return (parse_secret(self.current),)

    def rotated(self, new: str, now: datetime, overlap: timedelta) -> EndpointSecrets:
        """``new`` becomes current; the current one stays valid for ``overlap`` (an older
        previous one, from a rotation less than ``overlap`` ago, ends now)."""
        return EndpointSecrets(current=new, previous=self.current, previous_until=now + overlap)

    def to_text(self) -> str:
        if self.previous is None or self.previous_until is None:
            return self.current
        return json.dumps({"current": self.current, "previous": self.previous,
                           "previousUntil": self.previous_until.isoformat()})

    @classmethod
    def from_text(cls, text: str) -> EndpointSecrets:
        if text.startswith(SECRET_PREFIX):
            return cls(current=text)
        stored = json.loads(text)
        return cls(current=stored["current"], previous=stored["previous"],
                   previous_until=datetime.fromisoformat(stored["previousUntil"]))


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one request."""
    signed = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def generate_service_secret() -> str:
    return secrets.token_hex(GENERATED_SERVICE_SECRET_BYTES)


def check_service_secret(secret: str) -> str:
    """``secret`` if usable as an EmailEngine service secret; ValueError (without the secret) if not."""
    if not MIN_SERVICE_SECRET_CHARS <= len(secret) <= MAX_SERVICE_SECRET_CHARS:
        raise ValueError(f"must be {MIN_SERVICE_SECRET_CHARS} to {MAX_SERVICE_SECRET_CHARS} characters")
    if not secret.isprintable() or secret != secret.strip():
        raise ValueError("must be printable, without leading or trailing spaces")
    return secret


def emailengine_signature(service_secret: str, body: bytes) -> str:
    """The ``X-EE-Wh-Signature`` value for ``body``."""
    digest = hmac.new(service_secret.encode(), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def signed_headers(keys: Sequence[bytes], message_id: str, body: bytes,
                   timestamp: int | None = None, service_secret: str | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` (one signature per key), timestamped
    now unless told; with ``service_secret`` also EmailEngine's two."""
    moment = int(time.time()) if timestamp is None else timestamp
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(moment),
        "webhook-signature": " ".join(sign(key, message_id, moment, body) for key in keys),
    }
    if service_secret is not None:
        headers[EE_EVENT_ID_HEADER] = message_id
        headers[EE_SIGNATURE_HEADER] = emailengine_signature(service_secret, body)
    return headers
