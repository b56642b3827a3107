"""Watcher processes and shard leases in DynamoDB: who watches which accounts.

Accounts are hashed into ``IMAPLESS_WATCHER_SHARDS`` shards; a watcher process owns a
shard by holding its lease item. Process liveness is one heartbeat row per process
(``watchers`` table) instead of one renewal per lease, so a process holding thousands of
accounts writes one item per heartbeat.

::

    watchers table                         watcher-leases table
    worker      namespace  expires_at      shard           owner    epoch
    w-1a2b      watcher    1764000020500   watcher/017     w-1a2b   12
    w-9f8e      watcher    1764000021200   watcher/018     ""       7     (released)

Invariants:
- a lease changes hands only by compare-and-swap: taken when absent or released (owner
  ``""``), or when its owner is the (dead) owner the taker read; released only by its owner;
- every acquisition increments the shard's ``epoch`` (items are never deleted, so epochs
  only grow). Checkpoint writes carry the writer's epoch and are refused once a higher
  epoch has written (see :mod:`checkpoints`): a process that lost its lease while
  paused cannot move a checkpoint the new owner already moved.
- a process whose heartbeat is older than the lease duration is dead for everyone,
  and stops watching on its own before that (see ``workers/watch/supervisor.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import UpdateError
from pynamodb.models import Model

from chalicelib.settings import get_settings

_settings = get_settings()


class WorkerItem(Model):
    class Meta:
        table_name = _settings.table_name("watchers")
        region = _settings.aws_region

    worker = UnicodeAttribute(hash_key=True)
    namespace = UnicodeAttribute()
    expires_at = NumberAttribute()  # epoch milliseconds
    expires_at_epoch = NumberAttribute()  # epoch seconds, for DynamoDB TTL cleanup
    started_at = NumberAttribute()


class ShardLeaseItem(Model):
    class Meta:
        table_name = _settings.table_name("watcher-leases")
        region = _settings.aws_region

    shard = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()
    acquired_at = NumberAttribute()
    epoch = NumberAttribute(default=0)


@dataclass(frozen=True)
class LiveWorker:
    worker: str
    expires_at_ms: int


def now_ms() -> int:
    return int(time.time() * 1000)


def _conditional_failure(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def shard_key(namespace: str, shard: int) -> str:
    return f"{namespace}/{shard:03d}"


def heartbeat(worker: str, namespace: str, lease_seconds: float, started_at_ms: int) -> int:
    """Extend this process's life; returns the new expiry (epoch ms)."""
    expires = now_ms() + int(lease_seconds * 1000)
    WorkerItem(worker, namespace=namespace, expires_at=expires, expires_at_epoch=expires // 1000 + 3600,
               started_at=started_at_ms).save()
    return expires


def remove_worker(worker: str) -> None:
    WorkerItem(worker).delete()


def live_workers(namespace: str) -> list[LiveWorker]:
    now = now_ms()
    return sorted((LiveWorker(item.worker, int(item.expires_at))
                   for item in WorkerItem.scan(WorkerItem.namespace == namespace, consistent_read=True)
                   if item.expires_at > now), key=lambda w: w.worker)


RELEASED = ""


def shard_leases(namespace: str) -> dict[str, tuple[str, int]]:
    """Lease key -> (owner, epoch) for every shard of the namespace ever leased (owner "" = free)."""
    return {item.shard: (item.owner, int(item.epoch or 0))
            for item in ShardLeaseItem.scan(ShardLeaseItem.shard.startswith(namespace + "/"), consistent_read=True)}


def shard_owners(namespace: str) -> dict[str, str]:
    """Lease key -> owner for every held shard of the namespace."""
    return {key: owner for key, (owner, _) in shard_leases(namespace).items() if owner != RELEASED}


def acquire_shard(key: str, worker: str, previous_owner: str | None) -> int | None:
    """Take a free shard (``previous_owner`` None), or one held by ``previous_owner`` (read as
    dead). Returns the new epoch, or None if someone else won the race."""
    free = ShardLeaseItem.shard.does_not_exist() | (ShardLeaseItem.owner == RELEASED)
    condition = free if previous_owner in (None, RELEASED) else ShardLeaseItem.owner == previous_owner
    item = ShardLeaseItem(key)
    try:
        item.update(actions=[ShardLeaseItem.owner.set(worker), ShardLeaseItem.acquired_at.set(now_ms()),
                             ShardLeaseItem.epoch.add(1)], condition=condition)
    except UpdateError as exc:
        if _conditional_failure(exc):
            return None
        raise
    return int(item.epoch)


def release_shard(key: str, worker: str) -> bool:
    """Give a shard back (its epoch stays, so the next owner's is higher)."""
    try:
        ShardLeaseItem(key).update(actions=[ShardLeaseItem.owner.set(RELEASED)],
                                   condition=ShardLeaseItem.owner == worker)
    except UpdateError as exc:
        if _conditional_failure(exc):
            return False
        raise
    return True
