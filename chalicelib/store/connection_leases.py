"""Connection leases: a counting semaphore per account, shared by every API process.

The API may hold at most N IMAP connections per account across all Lambda containers and
local processes (``IMAPLESS_API_CONNECTIONS_PER_ACCOUNT``). Each open connection holds one
*slot*: an item ``(account, slot)`` in the connection-leases table naming its holder and
an expiry time. A crashed or frozen holder cannot block a slot forever: an expired item
counts as free.

    acquire:  Query(account)  -->  pick a free or expired slot  -->  conditional Put
              (consistent read)     (random order: fewer races)     holder := me,
                                                                     if the slot is free,
                                                                     expired, or mine
              all slots busy: back off (50 ms .. 400 ms, jittered) until the wait ends,
              then LeaseUnavailable(retry_after = earliest expiry)
    renew:    conditional Update expiresAt, if holder = me   (False: the slot was taken)
    release:  conditional Delete, if holder = me              (nothing to do otherwise)

Invariants:
- Expiry is wall-clock time (epoch seconds) because holders are different machines;
  conditions compare against the writer's clock, so clock skew between holders shortens
  or lengthens a lease by the skew (Lambda hosts are NTP-synchronised).
- DynamoDB's TTL deletion is lazy (hours); it only keeps the table small. Correctness
  comes from the ``expiresAt`` conditions, never from TTL.
- Only slots ``0 .. limit-1`` are used; lowering the limit takes effect as the higher
  slots expire.

Cost: an acquisition is one Query plus one conditional Put (more writes only under a race):
4-10 ms against moto as bench/api_latency.py measures it, single-digit ms on DynamoDB.
:mod:`chalicelib.imap.pool` therefore acquires once per pooled connection, not per request,
and renews only when the lease is about to run out.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError, UpdateError
from pynamodb.models import Model

from chalicelib.connection_slots import Lease, LeaseUnavailable
from chalicelib.settings import get_settings

_settings = get_settings()
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 0.4


class ConnectionLeaseItem(Model):
    class Meta:
        table_name = _settings.table_name("connection-leases")
        region = _settings.aws_region

    account = UnicodeAttribute(hash_key=True)
    slot = NumberAttribute(range_key=True)
    holder = UnicodeAttribute()
    expires_at = NumberAttribute(attr_name="expiresAt")


def _conditional_failure(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


class DynamoLeaseBroker:
    """The production lease broker (DynamoDB through pynamodb)."""

    def __init__(self, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep

    def acquire(self, account: str, holder: str, *, limit: int, ttl_seconds: float, wait_seconds: float) -> Lease:
        """Take a free slot, waiting up to ``wait_seconds``; LeaseUnavailable when none frees up."""
        give_up_at = self._clock() + wait_seconds
        backoff = BACKOFF_FIRST_SECONDS
        while True:
            now = self._clock()
            held = {item.slot: item for item in ConnectionLeaseItem.query(account, consistent_read=True)
                    if item.expires_at > now and item.holder != holder}
            free = [slot for slot in range(limit) if slot not in held]
            random.shuffle(free)
            for slot in free:
                lease = self._try_take(account, slot, holder, now, ttl_seconds)
                if lease is not None:
                    return lease
            now = self._clock()
            if now >= give_up_at:
                earliest = min((item.expires_at for item in held.values()), default=now + 1)
                raise LeaseUnavailable(account, limit, max(1, math.ceil(earliest - now)))
            self._sleep(min(backoff * random.uniform(0.5, 1.0), give_up_at - now))  # noqa: S311 - jitter
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def _try_take(self, account: str, slot: int, holder: str, now: float, ttl_seconds: float) -> Lease | None:
        expires_at = now + ttl_seconds
        item = ConnectionLeaseItem(account, slot, holder=holder, expires_at=expires_at)
        condition = (ConnectionLeaseItem.slot.does_not_exist() | (ConnectionLeaseItem.expires_at < now)
                     | (ConnectionLeaseItem.holder == holder))
        try:
            item.save(condition=condition)
        except PutError as exc:
            if _conditional_failure(exc):
                return None
            raise
        return Lease(account, slot, holder, expires_at)

    def renew(self, lease: Lease, *, ttl_seconds: float) -> Lease | None:
        """Extend a lease we still hold; None when another holder took the slot meanwhile."""
        expires_at = self._clock() + ttl_seconds
        item = ConnectionLeaseItem(lease.account, lease.slot)
        try:
            item.update(actions=[ConnectionLeaseItem.expires_at.set(expires_at)],
                        condition=ConnectionLeaseItem.holder == lease.holder)
        except UpdateError as exc:
            if _conditional_failure(exc):
                return None
            raise
        return Lease(lease.account, lease.slot, lease.holder, expires_at)

    def release(self, lease: Lease) -> None:
        try:
            ConnectionLeaseItem(lease.account, lease.slot).delete(
                condition=ConnectionLeaseItem.holder == lease.holder)
        except DeleteError as exc:
            if not _conditional_failure(exc):
                raise

    def release_all(self, account: str) -> int:
        """Drop every slot of ``account``, held or not (account deletion); returns how many."""
        items = list(ConnectionLeaseItem.query(account, attributes_to_get=["account", "slot"]))
        with ConnectionLeaseItem.batch_write() as batch:
            for item in items:
                batch.delete(item)
        return len(items)

    def holders(self, account: str) -> list[Lease]:
        """Live leases of an account (tests and diagnostics)."""
        now = self._clock()
        return [Lease(item.account, int(item.slot), item.holder, item.expires_at)
                for item in ConnectionLeaseItem.query(account, consistent_read=True) if item.expires_at > now]
