"""When the supervisor re-reads what it would otherwise keep cached. Pure: times are passed in.

Two caches, two rules:

**Account rows** (:class:`AccountScanSchedule`). Scanning every account's watch row every
scan period costs reads that grow with accounts x processes; the watchlist generation
(:mod:`chalicelib.store.watchlist`) says when a scan can find something new::

    every scan period: read generation g
      first tick ─────────────────────────────┐
      g != generation of the last scan ───────┤  (opens a settle window: scan on every
      inside a settle window ─────────────────┼─▶ scan   tick for settle_seconds more)
      last scan older than full_scan_seconds ─┤
      g unreadable (None) ────────────────────┘
      otherwise ───────────────────────────────▶ keep the rows of the last scan

The settle window exists because the ``watch`` index is eventually consistent: the bump
can be visible before the index shows the account write that preceded it. The full-scan
period covers a writer that died between its account write and its bump.

**Shard owners** (:class:`OwnersReadSchedule`). The lease table changes hands only by
compare-and-swap from processes acting on the live set they read. While every shard is
held by its preferred live process (``shards.leases_settled``) and the live set is the
one of the last read, no process has a reason to move a lease, so the owners read before
still holds. They are read again when the live set changes (a process joined or died:
failover timing is unchanged), while anything is unsettled (a release awaited, a
dead owner's shard to take), after this process moved a lease itself, and at least every
``refresh_seconds``: that bounds how long a process that others consider dead (skewed
clock) could go on next to the one that took its shard; lease epochs keep its checkpoint
writes out meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class AccountScanSchedule:
    full_scan_seconds: float
    settle_seconds: float
    scanned_generation: int | None = None
    scanned_at: float | None = None
    settle_until: float = float("-inf")

    def due(self, generation: int | None, now: float) -> bool:
        """Whether the tick that read ``generation`` (None: could not be read) must scan."""
        if generation is None or self.scanned_at is None:
            return True
        if generation != self.scanned_generation:
            self.settle_until = now + self.settle_seconds
        return now <= self.settle_until or now - self.scanned_at >= self.full_scan_seconds

    def scanned(self, generation: int | None, now: float) -> None:
        """A scan started after ``generation`` was read has completed."""
        self.scanned_generation, self.scanned_at = generation, now


@dataclass
class OwnersReadSchedule:
    refresh_seconds: float
    live: tuple[str, ...] | None = None
    read_at: float | None = None
    settled: bool = False

    def due(self, live: Sequence[str], now: float) -> bool:
        return (self.read_at is None or not self.settled or tuple(live) != self.live
                or now - self.read_at >= self.refresh_seconds)

    def read(self, live: Sequence[str], now: float) -> None:
        self.live, self.read_at = tuple(live), now

    def invalidate(self) -> None:
        """The cached owners no longer describe the table (we moved a lease, or read outside)."""
        self.settled = False
