"""Cutting a sequence into consecutive chunks bounded by a count and a size.

For AWS calls that take several items but cap both how many and how many bytes: an SQS
``SendMessageBatch`` (10 messages, 256 KiB) and a DynamoDB ``TransactWriteItems`` (100
items, 4 MB). Order is kept; an item larger than the size bound alone gets a chunk of its
own (the call then refuses it, which the caller must be ready for anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _one(_: object) -> int:
    return 1


def bounded_chunks(items: Iterable[T], *, max_count: int, max_bytes: int,
                   size_of: Callable[[T], int], count_of: Callable[[T], int] = _one) -> Iterator[list[T]]:
    """Consecutive runs whose ``count_of`` (default: one each) adds up to at most ``max_count``
    and whose ``size_of`` adds up to at most ``max_bytes``.

    ``count_of`` lets an item stand for several that must travel together (a checkpoint and
    its parts in one transaction).
    """
    chunk: list[T] = []
    size = count = 0
    for item in items:
        item_size, item_count = size_of(item), count_of(item)
        if chunk and (count + item_count > max_count or size + item_size > max_bytes):
            yield chunk
            chunk, size, count = [], 0, 0
        chunk.append(item)
        size += item_size
        count += item_count
    if chunk:
        yield chunk
