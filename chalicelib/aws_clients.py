"""The process's one botocore session and the AWS clients made from it.

Invariant: a process has one botocore session (created on first use, never at import)
and at most one client per (service, region, endpoint, config); every AWS client of the
project comes from here, pynamodb's included (:mod:`chalicelib.store` hands it
:func:`session`). Why: a botocore session parses endpoints.json, partitions and each
service's model from its own loader cache; a session per client (what ``boto3.client``
and pynamodb's per-connection sessions do) cost ~115 ms and ~10 MB each on a cold start,
a client from an already warm session ~5 ms.

    session() ──create_client──> DynamoDB client (pynamodb's Config)  <- every pynamodb table
              ──create_client──> DynamoDB client (default Config)      <- Powertools idempotency
              ──create_client──> SQS, KMS, S3 (path-style), STS        <- client("sqs") ...

botocore's session is not thread-safe while it creates clients (pynamodb keeps a session
per thread for that reason); here creation is serialized by a lock instead, and a client
once made is safe to share between threads (botocore's documented guarantee).

Endpoints: nothing is passed here. botocore reads ``AWS_ENDPOINT_URL`` (and
``AWS_ENDPOINT_URL_<SERVICE>``) itself, which is how moto is reached locally and in tests.

Failure mode kept from pynamodb: a client created while no credentials could be found
keeps none forever (botocore caches the empty answer), so such a client is never handed
out again; the next request builds a fresh one.
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

    return session().create_client(service, region_name=get_settings().aws_region, config=config)


def reset() -> None:
    """Forget the session and its clients (tests that point ``AWS_ENDPOINT_URL`` elsewhere)."""
    global _session
    with _lock:
        _session = None


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

    class SharedSession(botocore.session.Session):
        """A session whose ``create_client`` is serialized and remembers what it made."""

        def __init__(self) -> None:
            super().__init__()
            self._clients: dict[tuple[Any, ...], BaseClient] = {}

        def create_client(self, service_name: str, region_name: str | None = None, api_version: str | None = None,
                          use_ssl: bool = True, verify: Any = None, endpoint_url: str | None = None,
                          aws_access_key_id: str | None = None, aws_secret_access_key: str | None = None,
                          aws_session_token: str | None = None, config: Config | None = None,
                          **more: Any) -> BaseClient:
            arguments: dict[str, Any] = dict(region_name=region_name, api_version=api_version, use_ssl=use_ssl,
                                             verify=verify, endpoint_url=endpoint_url, config=config, **more)
            explicit = (aws_access_key_id, aws_secret_access_key, aws_session_token)
            with _lock:
                if any(explicit) or any(value is not None for value in more.values()):
                    # Someone else's credentials or account: not a client to share.
                    return super().create_client(service_name, aws_access_key_id=aws_access_key_id,
                                                 aws_secret_access_key=aws_secret_access_key,
                                                 aws_session_token=aws_session_token, **arguments)
                key = (service_name, region_name, api_version, use_ssl, repr(verify), endpoint_url,
                       _config_key(config))
                made = self._clients.get(key)
                if made is None or not _has_credentials(made):
                    made = self._clients[key] = super().create_client(service_name, **arguments)
                return made

    return SharedSession()
