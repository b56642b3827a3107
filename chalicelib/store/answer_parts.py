"""Packing an ``Idempotency-Key`` answer too large for its record into parts, and back.

DynamoDB refuses any item over 400 KB, and a dry run's answer holds the whole message (a
400 KB attachment becomes ~540 KB of base64). An answer whose JSON is at most
:data:`INLINE_BYTES` stays in its record as ever; a larger one is compressed and cut into
parts (:func:`chalicelib.store.checkpoint_parts.split_blob`, the checkpoints' cutter) that
:mod:`chalicelib.store.idempotency_records` writes as sibling items, and the record holds
only a small reference::

    record data  {"_answerParts": {"set": "9f2c…", "count": 2, "sha256": "…"}}
    part items   answer#9f2c…#0   <first 350,000 bytes of the compressed JSON>
                 answer#9f2c…#1   <the rest>

This module is the pure half: no pynamodb, no AWS.

Invariants:
- an answer is either inline (returned unchanged) or a reference; a reference is never
  mistaken for an answer (its one key is not a field of any answer);
- every packing has its own random ``set``, so the parts of two runs of one key (the
  first crashed, its in-progress record expired) never mix;
- :func:`unpack` returns the answer only when every part is present and the joined bytes
  hash to the reference's digest; anything else is a :class:`TornAnswerError`, never a
  partial answer.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.store.checkpoint_parts import PART_BYTES, split_blob

# Well below the 400 KB item limit: the record also holds its keys, hashes and status,
# and a large write is the one most likely to be throttled.
INLINE_BYTES = 64_000
REFERENCE_KEY = "_answerParts"


class TornAnswerError(Exception):
    """The parts of a stored answer are missing or do not hash to what the record says."""


@dataclass(frozen=True)
class PackedAnswer:
    """What the record holds, and the parts to write before it (none for an inline answer)."""

    held: dict[str, Any]
    set_id: str | None = None
    parts: list[bytes] = field(default_factory=list)


def _encode(answer: Mapping[str, Any]) -> bytes:
    return json.dumps(answer, sort_keys=True, separators=(",", ":"), default=str).encode()


def pack(answer: dict[str, Any], *, inline_bytes: int = INLINE_BYTES, part_bytes: int = PART_BYTES) -> PackedAnswer:
    """``answer`` as it is when small, else a reference plus the compressed parts."""
    encoded = _encode(answer)
    if len(encoded) <= inline_bytes:
        return PackedAnswer(held=answer)
    blob = zlib.compress(encoded)
    set_id = secrets.token_hex(16)
    parts = split_blob(blob, part_bytes)
    reference = {"set": set_id, "count": len(parts), "sha256": hashlib.sha256(blob).hexdigest()}
    return PackedAnswer(held={REFERENCE_KEY: reference}, set_id=set_id, parts=parts)


def reference_of(held: Mapping[str, Any]) -> tuple[str, int, str] | None:
    """(set, count, sha256) when ``held`` is a reference, None when it is the answer itself."""
    reference = held.get(REFERENCE_KEY)
    if not isinstance(reference, Mapping):
        return None
    set_id, count, digest = reference.get("set"), reference.get("count"), reference.get("sha256")
    if not (isinstance(set_id, str) and isinstance(count, int) and count > 0 and isinstance(digest, str)):
        raise TornAnswerError("the record's reference to its answer is malformed")
    return set_id, count, digest


def unpack(digest: str, parts: Sequence[bytes | None]) -> dict[str, Any]:
    """The answer from its parts in order (None: a part that was not found)."""
    missing = [number for number, part in enumerate(parts) if part is None]
    if missing:
        raise TornAnswerError(f"parts {missing} of {len(parts)} are missing")
    blob = b"".join(part for part in parts if part is not None)
    if hashlib.sha256(blob).hexdigest() != digest:
        raise TornAnswerError("the parts do not hash to the record's digest")
    answer = json.loads(zlib.decompress(blob))
    if not isinstance(answer, dict):
        raise TornAnswerError("the stored answer is not an object")
    return answer
