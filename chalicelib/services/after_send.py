"""What happens after the SMTP server took a message: the Sent copy, the flag on the original
of a reply or forward, the removal of the sent draft, and the record that says so.

The moment the server accepts a message, an :class:`Acceptance` is written to the outbox
entry (the server's answer, the recipients it took, the steps still to do) *before* any of
these steps runs. A worker that dies later leaves that record behind, and the next worker
only finishes the steps; the message never goes to the SMTP server a second time.

Each step may therefore run more than once, so each is idempotent::

    sentCopy       an APPEND that may be a repeat (a retry, a later worker) is preceded by
                   UID SEARCH HEADER Message-ID in the Sent folder: a copy already there is
                   kept and no second one is appended
    flagOriginal   +FLAGS of a flag the message has changes nothing
    deleteDraft    a draft already gone (UID EXPUNGE of a missing UID is a no-op, a rebuilt
                   Drafts folder is a 404) is what was wanted

Retries are bounded twice: :data:`STEP_TRIES` tries per step within one worker's time
budget, and :data:`MAX_RUNS` workers in all (a step that kills its worker every time, e.g.
an APPEND slower than the Lambda timeout, must not pin the entry in ``sending``). A step
that still fails becomes a ``warnings`` entry: the message was sent, and it is never sent
again to get a Sent copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib import backoff
from chalicelib.errors import ApiError
from chalicelib.observability import logger
from chalicelib.services import sent_mail
from chalicelib.smtp import providers
from chalicelib.smtp.delivery import DeliveryResult

if TYPE_CHECKING:
    from chalicelib.services.send_attempts import SendJob

SENT_COPY = "sentCopy"
FLAG_ORIGINAL = "flagOriginal"
DELETE_DRAFT = "deleteDraft"
STEP_TRIES = 3
# Workers that may start the steps of one acceptance: the one that sent, and one that
# finishes after it died. A third would mean the steps themselves kill workers.
MAX_RUNS = 2
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 4.0
# Below this a try cannot even log in (connect + greeting + LOGIN); it is not started.
MIN_TRY_SECONDS = 3.0
_WHAT_FAILED = {SENT_COPY: "not copied to the Sent folder", FLAG_ORIGINAL: "the original was not flagged",
                DELETE_DRAFT: "the draft was not removed"}
_GIVEN_UP = {SENT_COPY: "the Sent copy", FLAG_ORIGINAL: "flagging the original", DELETE_DRAFT: "removing the draft"}


@dataclass(frozen=True)
class Acceptance:
    """The SMTP server took the message: its answer, and the steps after sending still to do."""

    attempt: int
    at: datetime
    response: str
    accepted: tuple[str, ...]
    deferred: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    steps: tuple[str, ...] = ()
    runs: int = 1
    sent_message: dict[str, Any] | None = None

    @classmethod
    def of(cls, attempt: int, result: DeliveryResult, at: datetime, steps: tuple[str, ...]) -> Acceptance:
        return cls(attempt, at, result.response, tuple(result.accepted), dict(result.deferred),
                   dict(result.rejected), steps)

    def result(self) -> DeliveryResult:
        return DeliveryResult(self.response, self.accepted, dict(self.deferred), dict(self.rejected))

    def to_record(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "at": self.at.isoformat(), "response": self.response,
                "accepted": list(self.accepted), "deferred": self.deferred, "rejected": self.rejected,
                "steps": list(self.steps), "runs": self.runs, "sentMessage": self.sent_message}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Acceptance:
        return cls(int(record["attempt"]), datetime.fromisoformat(record["at"]), str(record["response"]),
                   tuple(record.get("accepted") or ()), dict(record.get("deferred") or {}),
                   dict(record.get("rejected") or {}), tuple(record.get("steps") or ()),
                   int(record.get("runs") or 1), record.get("sentMessage"))


def steps_for(job: SendJob, smtp_host: str) -> tuple[str, ...]:
    """The steps a first acceptance of ``job`` calls for (none after an earlier acceptance)."""
    if job.after_send_done:
        return ()
    steps = []
    if job.copy if job.copy is not None else not providers.stores_sent_copy(smtp_host):
        steps.append(SENT_COPY)
    if job.reference:
        steps.append(FLAG_ORIGINAL)
    if job.draft and job.draft.get("delete"):
        steps.append(DELETE_DRAFT)
    return tuple(steps)


def _run_step(job: SendJob, step: str, seconds: float, *, repeat: bool) -> dict[str, Any] | None:
    if step == SENT_COPY:
        return sent_mail.store_sent_copy(job.account, job.sent_copy_prefix + job.raw, job.message_id,
                                         look_first=repeat, budget_seconds=seconds)
    if step == FLAG_ORIGINAL:
        assert job.reference is not None
        sent_mail.flag_original(job.account, job.reference["message"], job.reference["action"],
                                budget_seconds=seconds)
    elif step == DELETE_DRAFT:
        assert job.draft is not None
        try:
            sent_mail.delete_draft(job.account, job.draft["message"], budget_seconds=seconds)
        except ApiError as exc:
            if exc.status != 404:
                raise
    return None


def _retryable(exc: Exception) -> bool:
    """A 4xx is the mailbox's answer (no Sent folder allowed, quota) and will not change."""
    return not (isinstance(exc, ApiError) and 400 <= exc.status < 500)


def run_steps(job: SendJob, acceptance: Acceptance, *, budget_seconds: float,
              on_progress: Callable[[Acceptance], None] | None = None,
              sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> tuple[Acceptance, list[str]]:
    """Run the steps ``acceptance`` has left; returns it with the done ones removed, and warnings.

    ``on_progress`` gets the acceptance after each step (the outbox stores it, so a later
    worker skips what is done). A repeated run (``runs`` > 1) looks for the Sent copy first.
    """
    deadline = clock() + budget_seconds
    warnings: list[str] = []
    for step in acceptance.steps:
        failure: Exception | None = None
        done = False
        for number in range(1, STEP_TRIES + 1):
            left = deadline - clock()
            if left < MIN_TRY_SECONDS:
                break
            try:
                found = _run_step(job, step, left, repeat=acceptance.runs > 1 or number > 1)
            except Exception as exc:  # noqa: BLE001 - reported as a warning, never as a send failure
                failure = exc
                logger.warning("a step after sending failed", extra={"queueId": job.queue_id, "step": step,
                                                                      "try": number, "error": repr(exc)})
                if not _retryable(exc) or number == STEP_TRIES:
                    break
                sleep(min(backoff.delay(number, base=RETRY_BASE_SECONDS, maximum=RETRY_MAX_SECONDS),
                          max(0.0, deadline - clock())))
                continue
            acceptance = replace(acceptance, steps=tuple(s for s in acceptance.steps if s != step),
                                 sent_message=found if step == SENT_COPY else acceptance.sent_message)
            if on_progress is not None:
                on_progress(acceptance)
            done = True
            break
        if not done:
            reason = sent_mail.describe(failure) if failure is not None else "no time left to try"
            warnings.append(f"the message was sent but {_WHAT_FAILED[step]}: {reason}")
    return acceptance, warnings


def abandoned(acceptance: Acceptance) -> list[str]:
    """Warnings for steps given up after :data:`MAX_RUNS` workers were stopped during them
    (a step may have partly happened: an APPEND whose answer never came may have stored it)."""
    return [f"the message was sent but {_GIVEN_UP[step]} was given up after {MAX_RUNS} workers "
            "were stopped during it" for step in acceptance.steps]
