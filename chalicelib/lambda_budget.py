"""A stand-in for the Lambda context where Powertools asks how long the work may run.

Powertools' idempotency derives an INPROGRESS record's expiry from
``context.get_remaining_time_in_millis()``. The API's ``Idempotency-Key`` requests and the
webhook attempts set that expiry themselves (the longest a request or an attempt may hold
its record), the same in a Lambda and in the local processes, so both use this one class.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext


class FixedBudget(LambdaContext):
    """A Lambda context whose remaining time is always ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self._millis = int(seconds * 1000)

    # LambdaContext declares this a static method; the budget is per instance here.
    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return self._millis
