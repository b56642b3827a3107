"""``Idempotency-Key``: a retried request returns the first result instead of acting twice.

Built on Powertools' idempotency utility with its DynamoDB persistence layer (table
``<prefix>idempotency``, TTL on ``expiration``). The key of a record is a hash of
(operation, account and its incarnation, the client's key), so keys are scoped per account
and per endpoint, and an account id that is deleted and registered again never replays its
first life's answers (those records are unreachable and expire with the TTL; legacy accounts
without an incarnation keep their keys, see :mod:`chalicelib.incarnations`). The request
body is hashed separately and checked on every reuse::

    first request   ──▶ INPROGRESS record ──▶ work ──▶ COMPLETED record with the answer
    same key, same body, first done        ──▶ the stored answer (header Idempotent-Replayed: true)
    same key, same body, first still busy  ──▶ 409 IdempotencyKeyInUse (retry later)
    same key, other body                   ──▶ 422 IdempotencyKeyReused
    the work raised (an error answer)      ──▶ record deleted: a retry runs again

An INPROGRESS record left by a crashed request stops blocking its key after
:data:`IN_PROGRESS_SECONDS` (longer than any request may run), so a client retrying
after a crash is not locked out for the whole TTL. Keys are 1-255 printable ASCII
characters; the body hash is SHA-256.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib.errors import (
    AccountNotFoundError,
    ApiError,
    ConflictError,
    ServiceUnavailableError,
    ValidationError,
)
from chalicelib.incarnations import scoped
from chalicelib.services import accounts
from chalicelib.settings import get_settings

IDEMPOTENCY_TABLE = "idempotency"
HEADER = "idempotency-key"              # the request header (HTTP header names are case-insensitive)
REPLAYED_HEADER = "Idempotent-Replayed"  # set on an answer that was stored, not computed now
IN_PROGRESS_SECONDS = 120
REPLAY_MARKER = "_idempotentReplay"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class _InProgressBudget(LambdaContext):
    """Stands in for a Lambda context: Powertools derives the INPROGRESS expiry from it."""

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return IN_PROGRESS_SECONDS * 1000


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, REPLAY_MARKER: True} if isinstance(response, dict) else response


def _run(*, request: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    # ``request`` is what Powertools hashes; ``work`` does the job once.
    return work()


@functools.lru_cache(maxsize=1)
def _idempotent_run() -> Callable[..., dict[str, Any]]:
    """The Powertools-wrapped runner, built on first use (it creates a DynamoDB client)."""
    settings = get_settings()
    config = IdempotencyConfig(event_key_jmespath="[operation, account, key]",
                               payload_validation_jmespath="bodyHash", raise_on_no_idempotency_key=True,
                               expires_after_seconds=settings.idempotency_ttl_seconds, hash_function="sha256",
                               lambda_context=_InProgressBudget(), response_hook=_mark_replay)
    store = DynamoDBPersistenceLayer(table_name=settings.table_name(IDEMPOTENCY_TABLE))
    return idempotent_function(_run, data_keyword_argument="request", persistence_store=store, config=config)


def reset() -> None:
    _idempotent_run.cache_clear()


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _account_scope(account: str) -> str:
    """``account`` in its current incarnation; as it is when no account holds the id (a replay
    of a deleted account's log, or of every account's): no later account can share that scope.

    A consistent read, not the few-seconds cache: right after an id is registered again, a
    stale incarnation would answer with the deleted account's result."""
    if not account:
        return account
    try:
        return scoped(account, accounts.get_account(account).incarnation)
    except AccountNotFoundError:
        return account


def run_once(operation: str, account: str, key: str | None, body: Any,
             work: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """``work()``'s answer, computed once per key; returns (answer, replayed)."""
    if key is None:
        return work(), False
    if not _KEY.match(key):
        raise ValidationError("Idempotency-Key must be 1-255 printable ASCII characters",
                              details={"headers.Idempotency-Key": "invalid"})
    request = {"operation": operation, "account": _account_scope(account), "key": key, "bodyHash": body_hash(body)}
    try:
        answer = _idempotent_run()(request=request, work=work)
    except IdempotencyAlreadyInProgressError:
        raise ConflictError("a request with this Idempotency-Key is still being processed; retry shortly",
                            code="IdempotencyKeyInUse") from None
    except IdempotencyValidationError:
        raise ApiError("this Idempotency-Key was used with a different request body", code="IdempotencyKeyReused",
                       status=422) from None
    except IdempotencyPersistenceLayerError as exc:
        # Powertools wraps failures of the work itself only when deleting the record failed too.
        if isinstance(exc.__cause__, ApiError):
            raise exc.__cause__ from None
        raise ServiceUnavailableError("the idempotency store is unavailable; nothing was done",
                                      code="IdempotencyStoreUnavailable") from None
    replayed = bool(answer.pop(REPLAY_MARKER, False))
    return answer, replayed
