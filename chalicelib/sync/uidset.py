"""Compact, immutable sets of IMAP UIDs stored as sorted ranges.

A mailbox's known UIDs and the UIDs carrying each flag are long runs of consecutive
numbers (mail arrives in UID order and is read in runs), so a set is kept as a tuple of
inclusive ``(first, last)`` ranges. Membership is a binary search, set algebra is a
linear merge of two range lists, and nothing ever materialises one int per message.

Invariants (checked by the constructor helpers, relied on everywhere):
- ranges are sorted, non-empty (``first <= last``), positive, and neither overlap nor
  touch (``next.first > prev.last + 1``), so equal sets have equal range tuples;
- instances are immutable and hashable.

Two serialisations:
- :meth:`UidSet.to_imap` / :meth:`UidSet.parse_imap`: the IMAP sequence-set syntax
  (``1:5,7,9:12``) used in commands and in ``VANISHED``/``ESEARCH`` responses;
- :meth:`UidSet.encode` / :meth:`UidSet.decode`: varint deltas (gap, run length) for
  checkpoints; a 100,000-message mailbox with realistic flags encodes in a few KB.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from chalicelib.varint import read_varint, write_varint

Range = tuple[int, int]


def _normalise(ranges: Iterable[Range]) -> tuple[Range, ...]:
    merged: list[list[int]] = []
    for first, last in sorted(r for r in ranges if r[0] <= r[1]):
        if first < 1:
            raise ValueError(f"UIDs are positive, got {first}")
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return tuple((a, b) for a, b in merged)


def _runs(uids: Iterable[int]) -> Iterator[Range]:
    ordered = sorted(set(uids))
    if not ordered:
        return
    start = previous = ordered[0]
    for uid in ordered[1:]:
        if uid == previous + 1:
            previous = uid
        else:
            yield (start, previous)
            start = previous = uid
    yield (start, previous)


class UidSet:
    __slots__ = ("_ends", "_ranges")

    def __init__(self, uids: Iterable[int] = ()) -> None:
        self._set_ranges(tuple(_runs(uids)))

    def _set_ranges(self, ranges: tuple[Range, ...]) -> None:
        self._ranges = ranges
        self._ends = [last for _, last in ranges]

    @classmethod
    def from_ranges(cls, ranges: Iterable[Range]) -> UidSet:
        instance = cls.__new__(cls)
        instance._set_ranges(_normalise(ranges))
        return instance

    @classmethod
    def span(cls, first: int, last: int) -> UidSet:
        """Every UID from ``first`` to ``last`` inclusive (empty when last < first)."""
        return cls.from_ranges([(first, last)])

    @property
    def ranges(self) -> tuple[Range, ...]:
        return self._ranges

    # -- set protocol ----------------------------------------------------------------------

    def __contains__(self, uid: object) -> bool:
        if not isinstance(uid, int):
            return False
        index = bisect.bisect_left(self._ends, uid)
        return index < len(self._ranges) and self._ranges[index][0] <= uid

    def __iter__(self) -> Iterator[int]:
        for first, last in self._ranges:
            yield from range(first, last + 1)

    def __len__(self) -> int:
        return sum(last - first + 1 for first, last in self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UidSet) and self._ranges == other._ranges

    def __hash__(self) -> int:
        return hash(self._ranges)

    def __repr__(self) -> str:
        return f"UidSet({self.to_imap()!r})"

    def __or__(self, other: UidSet) -> UidSet:
        return UidSet.from_ranges(self._ranges + other._ranges)

    def __and__(self, other: UidSet) -> UidSet:
        out: list[Range] = []
        i = j = 0
        a, b = self._ranges, other._ranges
        while i < len(a) and j < len(b):
            first, last = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if first <= last:
                out.append((first, last))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return UidSet.from_ranges(out)

    def __sub__(self, other: UidSet) -> UidSet:
        out: list[Range] = []
        j = 0
        b = other._ranges
        for first, last in self._ranges:
            current = first
            while j < len(b) and b[j][1] < current:
                j += 1
            k = j
            while k < len(b) and b[k][0] <= last:
                if b[k][0] > current:
                    out.append((current, b[k][0] - 1))
                current = max(current, b[k][1] + 1)
                k += 1
            if current <= last:
                out.append((current, last))
        return UidSet.from_ranges(out)

    def max(self) -> int | None:
        return self._ranges[-1][1] if self._ranges else None

    def at_least(self, uid: int) -> UidSet:
        """The UIDs >= ``uid``."""
        return self & UidSet.span(max(uid, 1), 2**32)

    # -- serialisation ---------------------------------------------------------------------

    def to_imap(self) -> str:
        return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in self._ranges)

    @classmethod
    def parse_imap(cls, text: str | bytes) -> UidSet:
        """Parse a sequence-set of numbers (``*`` is meaningless in responses and rejected)."""
        if isinstance(text, bytes):
            text = text.decode("ascii")
        ranges: list[Range] = []
        for part in filter(None, text.strip().split(",")):
            first, _, last = part.partition(":")
            low, high = int(first), int(last or first)
            ranges.append((min(low, high), max(low, high)))
        return cls.from_ranges(ranges)

    def encode(self) -> bytes:
        out = bytearray()
        write_varint(out, len(self._ranges))
        previous_end = 0
        for first, last in self._ranges:
            write_varint(out, first - previous_end)
            write_varint(out, last - first)
            previous_end = last
        return bytes(out)

    @classmethod
    def decode_from(cls, data: bytes | memoryview, position: int = 0) -> tuple[UidSet, int]:
        count, position = read_varint(data, position)
        ranges: list[Range] = []
        previous_end = 0
        for _ in range(count):
            gap, position = read_varint(data, position)
            length, position = read_varint(data, position)
            first = previous_end + gap
            ranges.append((first, first + length))
            previous_end = first + length
        return cls.from_ranges(ranges), position

    @classmethod
    def decode(cls, data: bytes) -> UidSet:
        value, position = cls.decode_from(data)
        if position != len(data):
            raise ValueError("trailing bytes after UID set")
        return value


EMPTY = UidSet()
