"""Cutting an encoded checkpoint blob into parts that each fit a DynamoDB item, and joining them back.

DynamoDB refuses any item over 400 KB. A 1M-message mailbox with scattered ``\\Seen`` and
labels compresses to ~670 KB, so :mod:`checkpoints` stores a large blob as a head part (in
the mailbox's own item) plus further parts in sibling items, all written in one transaction.
This module is the pure half: no pynamodb, no AWS.

Invariants:
- a blob of at most ``part_bytes`` is one part (small checkpoints stay one item, as ever);
- :func:`join_parts` returns a blob only when every part from 1 to ``count - 1`` is present
  and carries the head's revision; anything else is a :class:`TornCheckpointError`, never
  a shorter blob (a shorter blob would decode as a checkpoint that forgot messages, and the
  watcher would announce them as new).
- parts numbered ``count`` or above are leftovers of an earlier, larger revision: ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

# 400 KB item limit minus room for keys, attribute names and numbers.
PART_BYTES = 350_000


class TornCheckpointError(Exception):
    """The parts of a checkpoint do not belong to one revision, or some are missing."""


def split_blob(blob: bytes, part_bytes: int = PART_BYTES) -> list[bytes]:
    """``blob`` in consecutive parts of at most ``part_bytes``; at least one part."""
    if part_bytes <= 0:
        raise ValueError("part_bytes must be positive")
    return [blob[start:start + part_bytes] for start in range(0, max(len(blob), 1), part_bytes)] or [b""]


def join_parts(head: bytes, revision: int, count: int, parts: Mapping[int, tuple[int, bytes]]) -> bytes:
    """The whole blob from the head part and ``parts`` (part number -> (revision, bytes)).

    ``count`` is the number of parts the head says it was written with (1: no other parts).
    """
    pieces = [head]
    for number in range(1, count):
        if number not in parts:
            raise TornCheckpointError(f"part {number} of {count} is missing")
        part_revision, data = parts[number]
        if part_revision != revision:
            raise TornCheckpointError(f"part {number} is of revision {part_revision}, the head of {revision}")
        pieces.append(data)
    return b"".join(pieces)
