"""Which watcher process should hold which shard of accounts. Pure.

Accounts map to shards by a stable hash of the account id; shards map to live watcher
processes by rendezvous (highest-random-weight) hashing. Every process computes the
same preference from the same list of live processes, so they agree without talking,
the load is spread evenly, and when a process joins or leaves only the shards it
gains or loses move (about 1/N of them).

The lease table stays the authority: preference only decides who *tries* to take a
free or orphaned lease, and who gives one back.

- a process releases a shard it holds when another live process is preferred for it;
- it takes a shard that is free, or whose owner is no longer live, when it is the
  preferred live process for it.

When every shard is held by its preferred live process the leases are *settled*: until
the live set changes, nobody moves a lease, and the owners need not be re-read often.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def _weight(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=65536)
def shard_of(account: str, shards: int) -> int:
    return _weight("account", account) % shards


def preferred_worker(shard_key: str, live: Iterable[str]) -> str:
    return max(live, key=lambda worker: (_weight(shard_key, worker), worker))


@dataclass(frozen=True)
class LeasePlan:
    acquire: list[tuple[str, str | None]]  # (shard key, owner to replace: None if free)
    release: list[str]


def plan_leases(me: str, live: Iterable[str], owners: Mapping[str, str], shard_keys: Iterable[str]) -> LeasePlan:
    alive = set(live) | {me}
    acquire: list[tuple[str, str | None]] = []
    release: list[str] = []
    for key in shard_keys:
        owner = owners.get(key)
        preferred = preferred_worker(key, alive)
        if owner == me:
            if preferred != me:
                release.append(key)
        elif (owner is None or owner not in alive) and preferred == me:
            acquire.append((key, owner))
    return LeasePlan(acquire=acquire, release=release)


def leases_settled(live: Iterable[str], owners: Mapping[str, str], shard_keys: Iterable[str]) -> bool:
    """Every shard is held by its preferred live process: no process plans to move any lease."""
    alive = set(live)
    return bool(alive) and all(owners.get(key) == preferred_worker(key, alive) for key in shard_keys)
