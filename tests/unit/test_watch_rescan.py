"""When the supervisor re-reads accounts and shard owners instead of using what it read before."""

from __future__ import annotations

from workers.watch.rescan import AccountScanSchedule, OwnersReadSchedule
from workers.watch.shards import leases_settled, preferred_worker

KEYS = [f"watcher/{n:03d}" for n in range(16)]


def scanned_once(generation: int = 5, at: float = 0.0) -> AccountScanSchedule:
    schedule = AccountScanSchedule(full_scan_seconds=60, settle_seconds=3)
    assert schedule.due(generation, at)  # the first tick always scans
    schedule.scanned(generation, at)
    return schedule


def test_given_an_unchanged_generation_then_no_scan_until_the_full_scan_period():
    schedule = scanned_once()
    assert not any(schedule.due(5, t) for t in (2, 4, 30, 59.9))
    assert schedule.due(5, 60)


def test_given_a_moved_generation_then_scans_continue_through_the_settle_window():
    # The watch index may show the write after the bump: one scan is not enough.
    schedule = scanned_once()
    assert schedule.due(6, 10)
    schedule.scanned(6, 10)
    assert schedule.due(6, 12) and schedule.due(6, 13)
    schedule.scanned(6, 13)
    assert not schedule.due(6, 13.1)
    assert not schedule.due(6, 15)


def test_given_an_unreadable_generation_then_scan_and_treat_the_next_reading_as_a_move():
    schedule = scanned_once()
    assert schedule.due(None, 4)
    schedule.scanned(None, 4)
    assert schedule.due(5, 6)


def test_given_settled_leases_and_the_same_live_set_then_owners_are_read_only_every_refresh_period():
    schedule = OwnersReadSchedule(refresh_seconds=10)
    assert schedule.due(["a", "b"], 0)
    schedule.read(["a", "b"], 0)
    schedule.settled = True
    assert not schedule.due(["a", "b"], 9.9)
    assert schedule.due(["a", "b"], 10)


def test_given_a_changed_live_set_or_unsettled_leases_then_owners_are_read_every_tick():
    schedule = OwnersReadSchedule(refresh_seconds=10)
    schedule.read(["a", "b"], 0)
    schedule.settled = True
    assert schedule.due(["a"], 1)  # b died
    assert schedule.due(["a", "b", "c"], 1)  # c joined
    schedule.invalidate()
    assert schedule.due(["a", "b"], 1)


def test_leases_are_settled_only_when_every_shard_is_held_by_its_preferred_live_worker():
    live = ["a", "b"]
    preferred = {key: preferred_worker(key, live) for key in KEYS}
    assert leases_settled(live, preferred, KEYS)
    assert not leases_settled(live, {**preferred, KEYS[0]: "dead"}, KEYS)
    assert not leases_settled(live, {key: owner for key, owner in preferred.items() if key != KEYS[1]}, KEYS)
    waiting_for_c = {key: preferred_worker(key, ["a", "b"]) for key in KEYS}
    assert not leases_settled(["a", "b", "c"], waiting_for_c, KEYS)  # c waits for releases
    assert not leases_settled([], {}, KEYS)
