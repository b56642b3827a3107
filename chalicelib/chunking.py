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


def bounded_chunks(items: Iterable[T], *, max_count: int, max_bytes: int,
                   size_of: Callable[[T], int]) -> Iterator[list[T]]:
    """Consecutive runs of at most ``max_count`` items whose ``size_of`` adds up to at most ``max_bytes``."""
    chunk: list[T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if chunk and (len(chunk) == max_count or size + item_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk
