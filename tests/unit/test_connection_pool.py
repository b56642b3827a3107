"""The per-process IMAP connection pool with fake sessions and an in-memory lease broker."""

from __future__ import annotations

import socket
import threading

import pytest

from chalicelib.connection_slots import Lease, LeaseUnavailable
from chalicelib.errors import TooManyConnectionsError
from chalicelib.imap.connection import Deadline
from chalicelib.imap.pool import ConnectionPool, PoolLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeClient:
    def __init__(self) -> None:
        self.ours, self.server_side = socket.socketpair()
        self.noops = 0
        self.noop_fails = False

    def socket(self) -> socket.socket:
        return self.ours

    def noop(self) -> None:
        self.noops += 1
        if self.noop_fails:
            raise OSError("connection reset")


class FakeSession:
    def __init__(self) -> None:
        self.client = FakeClient()
        self.capabilities = frozenset({"IMAP4REV1"})
        self.closed = False

    def has_capability(self, name: str) -> bool:
        return name in self.capabilities

    def socket(self) -> socket.socket:
        return self.client.socket()

    def noop(self) -> None:
        self.client.noop()

    def close(self) -> None:
        self.closed = True
        self.client.ours.close()
        self.client.server_side.close()


class MemoryLeases:
    """Leases as the DynamoDB broker keeps them, in a dict; ``taken_by_others`` fills slots."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.slots: dict[tuple[str, int], Lease] = {}
        self.renewals = 0

    def acquire(self, account, holder, *, limit, ttl_seconds, wait_seconds):
        for slot in range(limit):
            current = self.slots.get((account, slot))
            if current is None or current.expires_at < self.clock() or current.holder == holder:
                lease = Lease(account, slot, holder, self.clock() + ttl_seconds)
                self.slots[(account, slot)] = lease
                return lease
        raise LeaseUnavailable(account, limit, 17)

    def renew(self, lease, *, ttl_seconds):
        self.renewals += 1
        if self.slots.get((lease.account, lease.slot), lease).holder != lease.holder:
            return None
        renewed = Lease(lease.account, lease.slot, lease.holder, self.clock() + ttl_seconds)
        self.slots[(lease.account, lease.slot)] = renewed
        return renewed

    def release(self, lease):
        if self.slots.get((lease.account, lease.slot)) == lease:
            del self.slots[(lease.account, lease.slot)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def leases(clock) -> MemoryLeases:
    return MemoryLeases(clock)


@pytest.fixture
def opened() -> list[FakeSession]:
    return []


@pytest.fixture
def pool(leases, clock) -> ConnectionPool:
    limits = PoolLimits(per_account=2, lease_seconds=60, noop_after_seconds=30, lease_wait_seconds=0.05)
    return ConnectionPool(leases, limits, clock=clock, wall_clock=clock)


def use(pool, opened, account="a", fingerprint="f1", *, broken=False):
    def opener(seconds: float) -> FakeSession:
        session = FakeSession()
        opened.append(session)
        return session

    with pool.connection(account, fingerprint, opener, Deadline(25)) as connection:
        connection.broken = broken
        return connection.session


def test_a_returned_connection_is_lent_again_without_noop_while_fresh(pool, opened, clock):
    first = use(pool, opened)
    clock.now += 10
    second = use(pool, opened)
    assert first is second and len(opened) == 1
    assert first.client.noops == 0


def test_after_idling_a_connection_is_checked_with_noop_and_replaced_if_dead(pool, opened, clock):
    first = use(pool, opened)
    clock.now += 31
    assert use(pool, opened) is first and first.client.noops == 1
    clock.now += 31
    first.client.noop_fails = True
    replacement = use(pool, opened)
    assert replacement is not first and first.closed


def test_a_connection_the_server_closed_is_noticed_without_a_round_trip(pool, opened):
    first = use(pool, opened)
    first.client.server_side.close()  # EOF: the socket turns readable
    first.client.noop_fails = True
    assert use(pool, opened) is not first


def test_broken_connections_are_closed_and_their_lease_released(pool, opened, leases):
    first = use(pool, opened, broken=True)
    assert first.closed and leases.slots == {}


def test_new_credentials_close_idle_connections_of_the_old_ones(pool, opened):
    old = use(pool, opened, fingerprint="f1")
    new = use(pool, opened, fingerprint="f2")
    assert new is not old and old.closed


def test_a_lease_is_renewed_only_when_it_would_run_out_during_a_request(pool, opened, leases, clock):
    use(pool, opened)
    clock.now += 20  # 40 s left > budget 25 + margin 5
    use(pool, opened)
    assert leases.renewals == 0
    clock.now += 15  # 25 s left
    use(pool, opened)
    assert leases.renewals == 1


def test_a_lease_taken_over_meanwhile_means_a_new_connection(pool, opened, leases, clock):
    first = use(pool, opened)
    clock.now += 59
    [(key, lease)] = leases.slots.items()
    leases.slots[key] = Lease(lease.account, lease.slot, "someone-else", clock.now + 60)
    second = use(pool, opened)
    assert second is not first and first.closed


def test_idle_connections_past_their_lease_are_closed(pool, opened, clock, leases):
    first = use(pool, opened)
    clock.now += 61
    second = use(pool, opened)
    assert second is not first and first.closed
    assert len(leases.slots) == 1


def test_all_slots_taken_elsewhere_is_429_with_the_brokers_retry_after(pool, opened, leases, clock):
    for slot in range(2):
        leases.slots[("a", slot)] = Lease("a", slot, "other", clock.now + 60)
    with pytest.raises(TooManyConnectionsError) as refused:
        use(pool, opened)
    assert refused.value.retry_after == 17
    assert pool.stats("a") == (0, 0)


def test_at_the_process_limit_a_request_waits_for_a_checkin(leases, clock, opened):
    pool = ConnectionPool(leases, PoolLimits(per_account=1, lease_wait_seconds=2), clock=clock, wall_clock=clock)
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with pool.connection("a", "f", lambda s: FakeSession(), Deadline(25)):
            inside.set()
            leave.wait(2)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(2)
    threading.Timer(0.1, leave.set).start()
    use(pool, opened)  # waits on the condition until the holder returns its connection
    holder.join()
    assert pool.stats("a") == (0, 1)


def test_at_the_process_limit_without_a_checkin_is_429(leases, clock, opened):
    pool = ConnectionPool(leases, PoolLimits(per_account=1, lease_wait_seconds=0.05), clock=clock,
                          wall_clock=clock)
    with pool.connection("a", "f", lambda s: FakeSession(), Deadline(25)):
        with pytest.raises(TooManyConnectionsError):
            use(pool, opened)
