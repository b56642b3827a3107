"""Whether an exception means "AWS did not answer": the service's own store, queue or key is down.

The API answers such a failure 503 ``ServiceUnavailable`` (try again later), not 500
``InternalError``, which is kept for bugs. An outage is a transport failure on the way to
an AWS endpoint (connection refused or reset, connect or read timeout: botocore's
``ConnectionError`` and ``HTTPClientError`` families) or an AWS answer that says "not now"
(throttling, a 5xx error code), found anywhere in the exception's chain: pynamodb wraps
botocore's error in its own exception and keeps it as ``cause``, other code raises from it.

Invariant: nothing here imports pynamodb (only chalicelib/store does); the wrapped error is
reached through the generic ``cause`` attribute and Python's ``__cause__``/``__context__``.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

# AWS error codes that say "the service cannot take this now", whatever the service.
UNAVAILABLE_ERROR_CODES = frozenset({
    "ServiceUnavailable", "ServiceUnavailableException", "InternalServerError", "InternalFailure",
    "InternalError", "ThrottlingException", "Throttling", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "KMSInternalException", "RequestThrottled",
})
MAX_CHAIN = 10  # an exception chain is short; the bound only guards against a cycle


def is_aws_outage(exc: BaseException) -> bool:
    """True if ``exc`` or an exception it wraps is an AWS endpoint that did not answer usefully."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < MAX_CHAIN:
        seen.add(id(current))
        if isinstance(current, BotocoreConnectionError | HTTPClientError):
            return True
        if isinstance(current, ClientError) and _error_code(current) in UNAVAILABLE_ERROR_CODES:
            return True
        wrapped = getattr(current, "cause", None)
        current = wrapped if isinstance(wrapped, BaseException) else (current.__cause__ or current.__context__)
    return False


def _error_code(error: ClientError) -> str | None:
    return error.response.get("Error", {}).get("Code")
