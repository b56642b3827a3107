"""Exponential backoff with jitter: the one formula every retry loop of the project uses.

``ceiling(n) = min(maximum, base * 2 ** (n - 1))`` after the n-th failure, then spread by
jitter so that many clients failing together (a server restart, an outage) do not retry
together. The jitter is a parameter (a fraction in ``[0, 1)``, random when omitted), so
tests can pin it. Users: the watcher's reconnects (``[ceiling / 2, ceiling]``) and the
sending retries (``ceiling`` +-20 %).
"""

from __future__ import annotations

import random

# 2 ** 20 times the base is past every maximum we use; capping the exponent keeps a long
# outage (thousands of failures) from overflowing the float.
MAX_DOUBLINGS = 20


def ceiling(failures: int, *, base: float, maximum: float) -> float:
    """``base`` after the first failure, doubling with each further one, at most ``maximum``."""
    return min(maximum, base * 2 ** min(max(0, failures - 1), MAX_DOUBLINGS))


def delay(failures: int, *, base: float, maximum: float, low: float = 0.5, high: float = 1.0,
          jitter: float | None = None) -> float:
    """The ceiling times a factor between ``low`` and ``high`` (``jitter`` in ``[0, 1)`` picks
    it; random when omitted), never above ``maximum``."""
    draw = random.random() if jitter is None else jitter  # noqa: S311 - jitter, not a secret
    return min(maximum, ceiling(failures, base=base, maximum=maximum) * (low + (high - low) * draw))
