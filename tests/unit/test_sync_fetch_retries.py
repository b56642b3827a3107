"""A new UID the server lists but a FETCH does not return: retried, then announced partial, never skipped."""

from __future__ import annotations

import pytest

from chalicelib.sync.fetch_retries import MAX_FETCH_ATTEMPTS, plan_fetch_retries
from chalicelib.sync.uidset import UidSet


@pytest.mark.parametrize(("name", "listed", "answered", "attempts", "give_up", "retry", "stop_at", "counts"), [
    ("all answered", [5, 6], [5, 6], {}, [], [], None, {}),
    ("first miss is retried", [5, 6], [6], {}, [], [5], 5, {5: 1}),
    ("second miss is retried", [5, 6], [6], {5: 1}, [], [5], 5, {5: 2}),
    ("third miss gives up", [5, 6], [6], {5: 2}, [5], [], None, {}),
    ("answered at last", [5, 6], [5, 6], {5: 2}, [], [], None, {}),
    ("the pass stops at the lowest held", [5, 6, 7], [5], {6: 2}, [6], [7], 7, {7: 1}),
    ("a later exhausted UID waits for the held one", [5, 6], [], {6: 2}, [], [5, 6], 5, {5: 1, 6: 3}),
    ("... and is given up on once first", [6, 7], [], {6: 3}, [6], [7], 7, {7: 1}),
    ("an old count for another UID is dropped", [8], [], {5: 2}, [], [8], 8, {8: 1}),
])
def test_plan(name, listed, answered, attempts, give_up, retry, stop_at, counts):
    plan = plan_fetch_retries(UidSet(listed), UidSet(answered), attempts)
    assert (list(plan.give_up), list(plan.retry), plan.stop_at, dict(plan.attempts)) == (
        give_up, retry, stop_at, counts)


def test_a_message_never_answered_is_given_up_on_after_the_bound():
    attempts: dict[int, int] = {}
    for _ in range(MAX_FETCH_ATTEMPTS - 1):
        plan = plan_fetch_retries(UidSet([9]), UidSet(), attempts)
        assert plan.retry == UidSet([9])
        attempts = dict(plan.attempts)
    assert plan_fetch_retries(UidSet([9]), UidSet(), attempts).give_up == UidSet([9])
