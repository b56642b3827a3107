"""Unsigned varints (LEB128): the byte encoding shared by checkpoints and message ids.

Seven bits per byte, least significant group first, the high bit set on every byte but
the last. Small numbers (UID gaps, run lengths, lengths of short strings) take one or two
bytes, which keeps checkpoints (:mod:`chalicelib.sync.uidset`) and ids
(:mod:`chalicelib.message_ids`) short.

Nothing here knows what the numbers mean; it sits below both users so that neither has to
import the other. ``read_varint`` raises ``ValueError`` on truncated input; callers turn
that into their own error.
"""

from __future__ import annotations


def write_varint(out: bytearray, value: int) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def read_varint(data: bytes | memoryview, position: int) -> tuple[int, int]:
    """Decode one varint at ``position``; return (value, next position)."""
    value = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
