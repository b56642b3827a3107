"""What the outbox consumer does with an entry: the decision alone, no store, queue or server.

Before the claim (from what the entry and its account say)::

    state                     account                  due            action
    sent, failed, cancelled   -                        -              drop      (a duplicate message)
    queued, sending           gone / re-created        -              orphaned  (cancel, no events)
    queued                    current                  > now + 1 s    reschedule
    queued                    current                  due            claim
    sending                   current                  -              claim     (the store refuses
                                                                                 a live lease: busy)

After a successful claim (from the entry's ``smtpAccepted``)::

    smtpAccepted    runs so far                 action
    none            -                           send      one SMTP attempt
    recorded        < after_send.MAX_RUNS       resume    only the steps left; never SMTP again
    recorded        >= after_send.MAX_RUNS      give-up   finish as accepted; the steps left are warnings

An entry claimed again while ``sending`` lost its worker (its lease ran out); whether the
server took the message before is exactly what ``smtpAccepted`` says.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from chalicelib.services.after_send import MAX_RUNS, Acceptance

FINAL_STATES = ("sent", "failed", "cancelled")
EARLY_TOLERANCE = timedelta(seconds=1)

BeforeClaim = Literal["drop", "orphaned", "reschedule", "claim"]
AfterClaim = Literal["send", "resume", "give-up"]


def before_claim(state: str, *, owner_current: bool, due: datetime, now: datetime) -> BeforeClaim:
    if state in FINAL_STATES:
        return "drop"
    if not owner_current:
        return "orphaned"
    if state == "queued" and due > now + EARLY_TOLERANCE:
        return "reschedule"
    return "claim"


def after_claim(accepted: Acceptance | None) -> AfterClaim:
    if accepted is None:
        return "send"
    if accepted.runs < MAX_RUNS:
        return "resume"
    return "give-up"
