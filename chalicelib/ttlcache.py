"""A small thread-safe cache whose entries expire: the hot-path lookups of a warm process.

Used where one DynamoDB read per request would dominate a request that is otherwise a
few IMAP round trips on a pooled connection: API token authentication and the account
record behind a mail request. Entries live ``ttl_seconds`` (0 disables caching), the
least recently used one is dropped beyond ``max_entries``. Only successful lookups are
cached; a failure is always asked again.

Staleness is bounded by the TTL in *other* processes; the process that makes a change
calls :meth:`TtlCache.forget` / :meth:`TtlCache.clear` so it never serves its own stale
entry.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def get_or_load(self, key: Hashable, load: Callable[[], V], ttl_seconds: float) -> V:
        """The cached value, or ``load()`` (cached for ``ttl_seconds`` unless it raises)."""
        if ttl_seconds > 0:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] > self._clock():
                    self._entries.move_to_end(key)
                    return entry[1]
        value = load()
        if ttl_seconds > 0:
            with self._lock:
                self._entries[key] = (self._clock() + ttl_seconds, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return value

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
