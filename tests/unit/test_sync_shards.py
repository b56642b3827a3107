"""Shard assignment: even spread, agreement without coordination, minimal movement."""

from __future__ import annotations

from collections import Counter

from workers.watch.shards import plan_leases, preferred_worker, shard_of

KEYS = [f"watcher/{n:03d}" for n in range(256)]


def test_accounts_spread_over_shards_and_stay_put():
    shards = Counter(shard_of(f"acct-{n}", 256) for n in range(20_000))
    assert len(shards) == 256 and max(shards.values()) < 2 * 20_000 / 256
    assert shard_of("alice", 256) == shard_of("alice", 256)


def test_given_three_live_workers_then_each_prefers_about_a_third():
    counts = Counter(preferred_worker(key, ["a", "b", "c"]) for key in KEYS)
    assert all(60 <= counts[w] <= 110 for w in "abc"), counts


def test_given_a_new_worker_then_only_shards_it_wins_move():
    before = {key: preferred_worker(key, ["a", "b"]) for key in KEYS}
    after = {key: preferred_worker(key, ["a", "b", "c"]) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(after[key] == "c" for key in moved) and 60 <= len(moved) <= 110


def test_given_free_shards_then_only_the_preferred_worker_takes_each():
    plans = {w: plan_leases(w, ["a", "b"], {}, KEYS) for w in "ab"}
    taken = [key for plan in plans.values() for key, _ in plan.acquire]
    assert sorted(taken) == sorted(KEYS) and all(previous is None for p in plans.values() for _, previous in p.acquire)


def test_given_a_dead_owner_then_its_shards_are_taken_from_it_by_name():
    owners = dict.fromkeys(KEYS, "dead")
    plan = plan_leases("a", ["a"], owners, KEYS)
    assert plan.acquire == [(key, "dead") for key in KEYS] and plan.release == []


def test_given_a_joining_worker_then_the_holder_releases_its_shards_and_keeps_the_rest():
    owners = dict.fromkeys(KEYS, "a")
    plan = plan_leases("a", ["a", "b"], owners, KEYS)
    assert set(plan.release) == {key for key in KEYS if preferred_worker(key, ["a", "b"]) == "b"}
    assert plan.acquire == []
    assert plan_leases("b", ["a", "b"], owners, KEYS).acquire == []  # b waits until a lets go
