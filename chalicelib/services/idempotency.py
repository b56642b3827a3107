"""``Idempotency-Key``: a retried request returns the first result instead of acting twice.

Built on Powertools' idempotency utility with its DynamoDB persistence layer (table
``<prefix>idempotency-records``, TTL on ``expiration``, layout in
:mod:`chalicelib.store.idempotency_records`). A record's partition is its account scope (the
account and its incarnation) and its sort key a hash of (operation, scope, the client's key),
so keys are scoped per account and per endpoint, deleting an account deletes its records, and
an account id that is deleted and registered again never replays its first life's answers
(legacy accounts without an incarnation keep their keys, see :mod:`chalicelib.incarnations`).
The request body is hashed separately and checked on every reuse::

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

import boto3
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
from botocore.client import BaseClient

from chalicelib.errors import (
    AccountNotFoundError,
    ApiError,
    ConflictError,
    ServiceUnavailableError,
    ValidationError,
)
from chalicelib.incarnations import scoped
from chalicelib.lambda_budget import FixedBudget
from chalicelib.services import accounts
from chalicelib.settings import get_settings
from chalicelib.store.idempotency_records import TABLE, partition

HEADER = "idempotency-key"              # the request header (HTTP header names are case-insensitive)
REPLAYED_HEADER = "Idempotent-Replayed"  # set on an answer that was stored, not computed now
IN_PROGRESS_SECONDS = 120
REPLAY_MARKER = "_idempotentReplay"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, REPLAY_MARKER: True} if isinstance(response, dict) else response


def _run(*, request: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    # ``request`` is what Powertools hashes; ``work`` does the job once.
    return work()


@functools.lru_cache(maxsize=1)
def _config() -> IdempotencyConfig:
    return IdempotencyConfig(event_key_jmespath="[operation, account, key]",
                             payload_validation_jmespath="bodyHash", raise_on_no_idempotency_key=True,
                             expires_after_seconds=get_settings().idempotency_ttl_seconds, hash_function="sha256",
                             lambda_context=FixedBudget(IN_PROGRESS_SECONDS), response_hook=_mark_replay)


@functools.lru_cache(maxsize=1)
def _client() -> BaseClient:
    """One DynamoDB client for every scope's persistence layer, created on first use."""
    return boto3.client("dynamodb", region_name=get_settings().aws_region)


def _idempotent_run(scope: str) -> Callable[..., dict[str, Any]]:
    """The Powertools-wrapped runner whose records live in ``scope``'s partition.

    A persistence layer holds one partition key, so each request gets its own (a few
    attribute assignments; the client is shared)."""
    store = DynamoDBPersistenceLayer(table_name=get_settings().table_name(TABLE), static_pk_value=partition(scope),
                                     sort_key_attr="sk", boto3_client=_client())
    return idempotent_function(_run, data_keyword_argument="request", persistence_store=store, config=_config())


def reset() -> None:
    _config.cache_clear()
    _client.cache_clear()


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
    scope = _account_scope(account)
    request = {"operation": operation, "account": scope, "key": key, "bodyHash": body_hash(body)}
    try:
        answer = _idempotent_run(scope)(request=request, work=work)
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
