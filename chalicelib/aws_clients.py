"""The process's one botocore session and the AWS clients made from it.

Invariant: a process has one botocore session (created on first use, never at import),
and every AWS client of the project is made from it: :func:`client` for our code (one
client per service and config variant, shared by every module), and pynamodb's per-table
clients (:mod:`chalicelib.store` hands pynamodb :func:`session`). Why: a botocore session
parses endpoints.json, the partitions and each service's model into its own loader cache;
a session per client (what ``boto3.client`` and pynamodb's per-connection sessions did)
cost ~115 ms and ~10 MB each on a cold start, a client from a warm session ~5 ms.

    session() ──client("dynamodb")──> Powertools idempotency layers
              ──client("sqs"), ("kms"), ("s3", path-style), ("sts")
              ──create_client──> one DynamoDB client per pynamodb table (pynamodb's Config)

pynamodb keeps a client per table on purpose: each has its own connection pool
(``max_pool_connections``), which the watcher's thread pool fills; one client for all
tables would make them queue for one pool.

botocore's session is not thread-safe while it creates clients (pynamodb kept a session
per thread for that reason); here creation is serialized by a lock instead. A client once
made is safe to share between threads (botocore's documented guarantee).

Endpoints: nothing is passed here. botocore reads ``AWS_ENDPOINT_URL`` (and
``AWS_ENDPOINT_URL_<SERVICE>``) itself, which is how moto is reached locally and in tests.

Failure mode kept from pynamodb: a client created while no credentials could be found
keeps none forever (botocore caches the empty answer), so such a client is not handed out
again; the next call builds a fresh one.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from botocore.config import Config
    from botocore.session import Session

_lock = threading.RLock()
_session: Session | None = None
_clients: dict[tuple[Any, ...], BaseClient] = {}


def session() -> Session:
    """The process's botocore session, created on first use."""
    global _session
    with _lock:
        if _session is None:
            _session = _new_session()
        return _session


def client(service: str, *, config: Config | None = None) -> BaseClient:
    """The shared client of ``service`` in the configured region (``config`` selects a variant)."""
    from chalicelib.settings import get_settings

    region = get_settings().aws_region
    key = (service, region, _config_key(config))
    with _lock:
        made = _clients.get(key)
        if made is None or not _has_credentials(made):
            made = _clients[key] = session().create_client(service, region_name=region, config=config)
        return made


def reset() -> None:
    """Forget the session and its clients (tests that point ``AWS_ENDPOINT_URL`` elsewhere)."""
    global _session
    with _lock:
        _session = None
        _clients.clear()


def _config_key(config: Config | None) -> tuple[tuple[str, str], ...]:
    if config is None:
        return ()
    return tuple(sorted((name, repr(getattr(config, name, None))) for name in config.OPTION_DEFAULTS))


def _has_credentials(made: Any) -> bool:
    signer = getattr(made, "_request_signer", None)
    return signer is None or getattr(signer, "_credentials", None) is not None


def _new_session() -> Session:
    # botocore is imported here, not at module import: the module is imported by code that
    # may never reach AWS in a given process (and botocore costs ~150 ms to import).
    import botocore.session

    class SerializedSession(botocore.session.Session):
        """A session whose ``create_client`` runs one call at a time (see the module docstring)."""

        def create_client(self, *args: Any, **kwargs: Any) -> BaseClient:
            with _lock:
                return super().create_client(*args, **kwargs)

    return SerializedSession()
