"""The watcher's decisions, as a table: account state + what woke it + what the server said -> steps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.sync.account_state import SYNC_ERROR_AFTER_FAILURES
from chalicelib.sync.watch_plan import (
    HELPER_IDLE_SECONDS,
    PROMPT_AFTER_REPORTS,
    STABLE_CONNECTION_SECONDS,
    Health,
    Heard,
    IdleLatency,
    Steps,
    Wake,
    WatchState,
    failures_before,
    fired_timers,
    plan_steps,
    reconnect_delay,
    recovery_due,
)

IDLING = WatchState(connected=True, idling=True, two_connections=True)
ONE_CONNECTION = WatchState(connected=True, idling=True, two_connections=False)
PROMPT = IdleLatency(reported_in_a_row=PROMPT_AFTER_REPORTS)
NO_IDLE = IdleLatency(supported=False)

# (name, state, wake, heard, expected steps)
CASES = [
    ("disconnected: a sweep or re-issue timer left behind does not connect",
     WatchState(), Wake(reissue=True, sweep=True, readable=True), Heard(), Steps()),
    ("disconnected: the connect timer connects",
     WatchState(), Wake(connect=True), Heard(), Steps(connect=True)),
    ("BYE: reconnect, nothing else",
     IDLING, Wake(readable=True), Heard(bye=True, selected_changed=True), Steps(reconnect=True)),
    ("readable, nothing relevant (noise): keep idling",
     IDLING, Wake(readable=True), Heard(), Steps(keep_idling=True)),
    ("IDLE reported the IDLE folder: leave IDLE, sync it, IDLE again, credit IDLE",
     IDLING, Wake(readable=True), Heard(selected_changed=True, idle_reported=True),
     Steps(leave_idle=True, sync_idle_folder=True, idle_again=True, found_by="idle")),
    ("a command's answer carried the change: same steps, IDLE gets no credit",
     IDLING, Wake(carried=True), Heard(selected_changed=True),
     Steps(leave_idle=True, sync_idle_folder=True, idle_again=True, found_by="other")),
    ("re-issue timer: leave IDLE, sync the IDLE folder as a safety net",
     IDLING, Wake(reissue=True), Heard(),
     Steps(leave_idle=True, sync_idle_folder=True, idle_again=True)),
    ("NOTIFY named other folders, two connections: helper syncs them, IDLE stays",
     IDLING, Wake(readable=True), Heard(others_changed=True), Steps(others_on_helper=True, keep_idling=True)),
    ("sweep, two connections, IDLE not yet trusted: helper sweeps the IDLE folder too, IDLE is poked",
     IDLING, Wake(sweep=True), Heard(),
     Steps(others_on_helper=True, sweep=True, sweep_idle_folder=True, leave_idle=True, poke=True,
           idle_again=True)),
    ("sweep, two connections, IDLE prompt: the IDLE folder is left to IDLE",
     WatchState(connected=True, idling=True, idle=PROMPT), Wake(sweep=True), Heard(),
     Steps(others_on_helper=True, sweep=True, keep_idling=True)),
    ("sweep, one connection: leave IDLE and sweep on it",
     ONE_CONNECTION, Wake(sweep=True), Heard(),
     Steps(leave_idle=True, others_on_listener=True, sweep=True, sweep_idle_folder=True,
           sync_idle_folder=True, idle_again=True)),
    ("NOTIFY names others, one connection: leave IDLE, sync them here",
     ONE_CONNECTION, Wake(readable=True), Heard(others_changed=True),
     Steps(leave_idle=True, others_on_listener=True, sync_idle_folder=True, idle_again=True)),
    ("connected but not idling (the server ended IDLE): sync and IDLE again",
     WatchState(connected=True, idling=False), Wake(readable=True), Heard(),
     Steps(sync_idle_folder=True, idle_again=True)),
    ("server without IDLE, sweep: the helper sweeps every folder, nothing to leave or re-enter",
     WatchState(connected=True, idling=False, idle=NO_IDLE), Wake(sweep=True), Heard(),
     Steps(others_on_helper=True, sweep=True, sweep_idle_folder=True)),
    ("server without IDLE, re-issue timer: sync the IDLE folder, arm the timer again",
     WatchState(connected=True, idling=False, idle=NO_IDLE), Wake(reissue=True), Heard(),
     Steps(sync_idle_folder=True, idle_again=True)),
    ("helper unused: close it",
     WatchState(connected=True, idling=True, helper_open=True), Wake(close_helper=True), Heard(),
     Steps(close_helper=True, keep_idling=True)),
    ("helper unused but a sweep is armed: keep it",
     WatchState(connected=True, idling=True, helper_open=True, sweep_armed=True), Wake(close_helper=True),
     Heard(), Steps(keep_idling=True)),
]


@pytest.mark.parametrize(("state", "wake", "heard", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_plan_steps(state, wake, heard, expected):
    assert plan_steps(state, wake, heard) == expected


@pytest.mark.parametrize(("found_by", "prompt_after"), [
    (["idle"] * PROMPT_AFTER_REPORTS, True),
    (["idle"] * (PROMPT_AFTER_REPORTS - 1), False),
    (["idle"] * PROMPT_AFTER_REPORTS + ["sweep"], False),  # a change IDLE missed: back in the sweep
    (["idle"] * PROMPT_AFTER_REPORTS + ["other"], False),  # ... or one a re-issue found
    (["sweep", *["idle"] * PROMPT_AFTER_REPORTS], True),  # a slow start is forgiven by a streak
    (["idle", "sweep", *["idle"] * (PROMPT_AFTER_REPORTS - 1)], False),
])
def test_idle_is_trusted_only_after_reporting_changes_first_in_a_row(found_by, prompt_after):
    latency = IdleLatency()
    for finder in found_by:
        latency = latency.observe(finder)
    assert latency.prompt is prompt_after


def test_a_server_without_idle_is_never_trusted():
    latency = IdleLatency(supported=False)
    for _ in range(PROMPT_AFTER_REPORTS + 1):
        latency = latency.observe("idle")
    assert not latency.prompt


@pytest.mark.parametrize(("now", "timers", "expected"), [
    (10.0, {"retry_at": 10.0}, Wake(connect=True)),
    (9.9, {"retry_at": 10.0}, Wake()),
    (10.0, {"reissue_at": 5.0, "sweep_at": 9.0}, Wake(reissue=True, sweep=True)),
    (HELPER_IDLE_SECONDS + 1, {"helper_used_at": 0.0}, Wake(close_helper=True)),
    (HELPER_IDLE_SECONDS + 1, {"helper_used_at": 0.0, "sweep_at": 1e9}, Wake()),  # the sweep will use it
    (HELPER_IDLE_SECONDS + 1, {"helper_used_at": None}, Wake()),  # no helper open
])
def test_fired_timers(now, timers, expected):
    arguments = {"retry_at": None, "reissue_at": None, "sweep_at": None, "helper_used_at": None, **timers}
    assert fired_timers(now, **arguments) == expected


@pytest.mark.parametrize(("failures", "jitter", "expected"), [
    (1, 0.0, 0.5), (1, 0.999, 0.9995), (2, 0.0, 1.0), (4, 0.0, 4.0), (10, 0.0, 30.0), (10_000, 0.5, 45.0),
])
def test_reconnect_delay_doubles_to_its_maximum_with_jitter_below_the_ceiling(failures, jitter, expected):
    assert reconnect_delay(failures, minimum=1.0, maximum=60.0, jitter=jitter) == pytest.approx(expected)


def test_wakes_merge():
    merged = Wake(readable=True).merge(Wake(sweep=True))
    assert merged == Wake(readable=True, sweep=True) and merged and not Wake()


@pytest.mark.parametrize(("failures", "connected_for", "expected"), [
    (4, None, 4),  # the login itself failed: the series goes on
    (4, 5.0, 4),  # logged in, caught up, failed within a minute: the series goes on
    (4, STABLE_CONNECTION_SECONDS - 0.1, 4),
    (4, STABLE_CONNECTION_SECONDS, 0),  # it held: a new series starts
    (0, 3600.0, 0),
])
def test_only_a_connection_that_held_starts_a_new_backoff_series(failures, connected_for, expected):
    assert failures_before(failures, connected_for) == expected


@pytest.mark.parametrize(("capped", "connected_for", "expected"), [
    (False, 3600.0, False),  # nothing to recover from
    (True, None, False),  # not connected
    (True, 1.0, False),  # caught up, but a flooding server lets a catch-up through too
    (True, STABLE_CONNECTION_SECONDS, True),
])
def test_after_a_read_cap_only_a_connection_that_held_is_announced(capped, connected_for, expected):
    assert recovery_due(capped, connected_for) is expected


LOGGED_IN = Health(connected_at=100.0)
HELD = 100.0 + STABLE_CONNECTION_SECONDS


# (name, health before, kind, now, health after, record syncError now)
FAILURES = [
    ("the login failed: the backoff series grows, nothing is counted towards syncError",
     Health(failures=2), "transient", 200.0, Health(failures=3), False),
    ("after login, a lease that moved says nothing about the server",
     replace(LOGGED_IN, failures=1), "not_the_server", 101.0, Health(failures=2), False),
    ("after login, a lost connection is counted quietly",
     LOGGED_IN, "transient", 101.0, Health(failures=1, sync_failures=1), False),
    ("the failure that reaches the limit records syncError",
     replace(LOGGED_IN, sync_failures=SYNC_ERROR_AFTER_FAILURES - 1), "transient", 101.0,
     Health(failures=1, sync_failures=SYNC_ERROR_AFTER_FAILURES), True),
    ("a failure that will repeat records syncError at once",
     LOGGED_IN, "persistent", 101.0, Health(failures=1, sync_failures=1), True),
    ("an answer over a read cap records syncError at once and marks the account capped",
     LOGGED_IN, "over_read_cap", 101.0, Health(failures=1, sync_failures=1, capped=True), True),
    ("a connection that held starts a new backoff series",
     replace(LOGGED_IN, failures=5), "transient", HELD, Health(failures=1, sync_failures=1), False),
    ("capped stays until a connection holds",
     replace(LOGGED_IN, capped=True), "transient", 101.0, Health(failures=1, sync_failures=1, capped=True), False),
]


@pytest.mark.parametrize(("before", "kind", "now", "after", "record"), [case[1:] for case in FAILURES],
                         ids=[case[0] for case in FAILURES])
def test_health_after_a_failure(before, kind, now, after, record):
    assert before.failed(kind, now) == (after, record)


@pytest.mark.parametrize(("before", "after", "announce"), [
    (Health(failures=3, sync_failures=2, connected_at=1.0), Health(failures=3, connected_at=1.0), True),
    # after a read cap, the catch-up alone announces nothing (and keeps the backoff series)
    (Health(failures=3, sync_failures=1, capped=True, connected_at=1.0),
     Health(failures=3, capped=True, connected_at=1.0), False),
])
def test_health_after_a_catch_up(before, after, announce):
    assert before.caught_up() == (after, announce)


@pytest.mark.parametrize(("before", "now", "after", "announce"), [
    (LOGGED_IN, HELD, LOGGED_IN, False),  # nothing to recover from
    (replace(LOGGED_IN, capped=True), HELD - 0.1, replace(LOGGED_IN, capped=True), False),
    (replace(LOGGED_IN, capped=True), HELD, LOGGED_IN, True),  # held: announced once
    (Health(capped=True), HELD, Health(capped=True), False),  # not connected
])
def test_health_while_connected(before, now, after, announce):
    assert before.confirmed(now) == (after, announce)


def test_health_connection_times():
    health = Health(failures=2).logged_in(50.0)
    assert health.connected_for(80.0) == 30.0
    assert health.closed() == Health(failures=2) and health.closed().connected_for(80.0) is None
