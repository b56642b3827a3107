"""What the outbox consumer does with an entry in each state, the steps after sending, and the
timing of a send (pure: no store, queue or server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib.errors import MessageNotFoundError, UpstreamTimeoutError
from chalicelib.services import after_send, outbox_plan
from chalicelib.services.after_send import DELETE_DRAFT, FLAG_ORIGINAL, SENT_COPY, Acceptance
from chalicelib.services.outbox import SEND_LEASE
from chalicelib.services.send_attempts import SendJob
from chalicelib.smtp.compose import Envelope
from chalicelib.smtp.delivery import DeliveryResult
from chalicelib.store import outbox as outbox_store
from local.dispatcher import function_timeout_seconds
from local.resources import load_template

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ACCEPTED = Acceptance(1, NOW, "250 queued", ("b@example.com",), steps=(SENT_COPY, FLAG_ORIGINAL, DELETE_DRAFT))
JOB = SendJob(account="acc", queue_id="q1", message_id="<m1@example.com>",
              envelope=Envelope("a@example.com", ("b@example.com",)), raw=b"Subject: x\r\n\r\nx\r\n",
              reference={"message": "ref", "action": "reply"}, draft={"message": "draft", "delete": True})


@pytest.mark.parametrize(("state", "owner_current", "due", "expected"), [
    ("sent", True, NOW, "drop"),
    ("failed", False, NOW, "drop"),
    ("cancelled", True, NOW + timedelta(hours=1), "drop"),
    ("queued", False, NOW, "orphaned"),
    ("sending", False, NOW, "orphaned"),
    ("queued", True, NOW + timedelta(minutes=20), "reschedule"),
    ("queued", True, NOW + timedelta(milliseconds=500), "claim"),  # within the early tolerance
    ("queued", True, NOW - timedelta(minutes=1), "claim"),
    ("sending", True, NOW + timedelta(minutes=20), "claim"),  # a dead worker's entry: the lease decides
])
def test_before_the_claim(state, owner_current, due, expected):
    assert outbox_plan.before_claim(state, owner_current=owner_current, due=due, now=NOW) == expected


@pytest.mark.parametrize(("accepted", "expected"), [
    (None, "send"),
    (ACCEPTED, "resume"),  # the server took it: never SMTP again
    (Acceptance(3, NOW, "250 ok", ("b@example.com",), steps=()), "resume"),
    (Acceptance(1, NOW, "250 ok", ("b@example.com",), steps=(SENT_COPY,), runs=after_send.MAX_RUNS), "give-up"),
])
def test_after_the_claim(accepted, expected):
    assert outbox_plan.after_claim(accepted) == expected


def test_the_plan_knows_the_same_final_states_as_the_store():
    assert outbox_plan.FINAL_STATES == outbox_store.FINAL_STATES


def test_an_acceptance_survives_its_record():
    accepted = Acceptance.of(2, DeliveryResult("250 2.0.0 Ok", ("b@example.com",), {"c@example.com": "451 later"},
                                               {"d@example.com": "550 no"}), NOW, (SENT_COPY,))
    stored = json.loads(json.dumps(accepted.to_record()))
    assert Acceptance.from_record(stored) == accepted
    assert accepted.result() == DeliveryResult("250 2.0.0 Ok", ("b@example.com",), {"c@example.com": "451 later"},
                                               {"d@example.com": "550 no"})


class Steps:
    """Scripted outcomes of the steps after sending: step -> list of exceptions (None: success)."""

    def __init__(self, script: dict[str, list[Exception | None]]) -> None:
        self.script = script
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, job: SendJob, step: str, seconds: float, *, repeat: bool) -> dict | None:
        self.calls.append((step, repeat))
        outcome = self.script.get(step, [None]).pop(0) if self.script.get(step) else None
        if outcome is not None:
            raise outcome
        return {"path": "Sent", "uid": 7} if step == SENT_COPY else None


def run(monkeypatch, script, acceptance=ACCEPTED, budget=60.0):
    steps = Steps(script)
    monkeypatch.setattr(after_send, "_run_step", steps)
    progress: list[Acceptance] = []
    done, warnings = after_send.run_steps(JOB, acceptance, budget_seconds=budget, on_progress=progress.append,
                                          sleep=lambda seconds: None)
    return steps.calls, progress, done, warnings


def test_each_step_runs_once_and_its_progress_is_recorded(monkeypatch):
    calls, progress, done, warnings = run(monkeypatch, {})
    assert calls == [(SENT_COPY, False), (FLAG_ORIGINAL, False), (DELETE_DRAFT, False)]
    assert [p.steps for p in progress] == [(FLAG_ORIGINAL, DELETE_DRAFT), (DELETE_DRAFT,), ()]
    assert done.sent_message == {"path": "Sent", "uid": 7} and warnings == []


def test_a_retried_sent_copy_looks_for_the_earlier_one_first(monkeypatch):
    calls, _, done, warnings = run(monkeypatch, {SENT_COPY: [UpstreamTimeoutError("slow APPEND"), None]})
    assert calls[:2] == [(SENT_COPY, False), (SENT_COPY, True)]
    assert done.steps == () and warnings == []


def test_a_later_worker_looks_for_the_sent_copy_from_its_first_try(monkeypatch):
    calls, _, _, _ = run(monkeypatch, {}, acceptance=Acceptance(1, NOW, "250", ("b",), steps=(SENT_COPY,), runs=2))
    assert calls == [(SENT_COPY, True)]


def test_retries_are_bounded_and_end_in_a_warning_not_a_failure(monkeypatch):
    failures: list[Exception | None] = [UpstreamTimeoutError("slow")] * 5
    calls, _, done, warnings = run(monkeypatch, {SENT_COPY: failures})
    assert calls.count((SENT_COPY, False)) + calls.count((SENT_COPY, True)) == after_send.STEP_TRIES
    assert done.steps == (SENT_COPY,) and done.sent_message is None
    assert warnings == ["the message was sent but not copied to the Sent folder: UpstreamTimeout: slow"]


def test_a_mailbox_answer_is_not_retried(monkeypatch):
    calls, _, _, warnings = run(monkeypatch, {FLAG_ORIGINAL: [MessageNotFoundError("gone")]})
    assert calls.count((FLAG_ORIGINAL, False)) == 1
    assert warnings == ["the message was sent but the original was not flagged: MessageNotFound: gone"]


def test_no_step_is_started_without_time_for_it(monkeypatch):
    calls, _, done, warnings = run(monkeypatch, {}, budget=after_send.MIN_TRY_SECONDS / 2)
    assert calls == [] and done.steps == ACCEPTED.steps and len(warnings) == 3


def test_steps_given_up_are_reported():
    assert after_send.abandoned(Acceptance(1, NOW, "250", ("b",), steps=(SENT_COPY,))) == [
        "the message was sent but the Sent copy was given up after 2 workers were stopped during it"]


def test_a_live_worker_keeps_its_lease_and_a_dead_ones_message_finds_it_expired():
    # Given the outbox consumer's timeout and its queue's visibility timeout as they ship
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    timeout = config["lambda_functions"]["deliver_outbox"]["lambda_timeout"]
    queue = load_template(ROOT / "template.yaml")["Resources"]["OutboxQueue"]["Properties"]
    visibility = queue["VisibilityTimeout"]
    # Then no second worker can claim while the first may still run, a redelivered message can
    # claim at once, and the queue follows AWS's 6x advice
    assert timeout < SEND_LEASE.total_seconds() < visibility
    assert visibility >= 6 * timeout
    # and the local dispatcher gives the consumer the same time as Lambda
    assert function_timeout_seconds("deliver_outbox") == timeout
