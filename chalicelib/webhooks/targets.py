"""Where one account's events go: global settings + account override, cached briefly.

A consumer handles hundreds of events per second; reading the settings, the account and
the secret for each would triple its DynamoDB traffic. :func:`resolve_target` keeps the
settings, the global secrets, endpoint states and each account's override with its own
secrets (or the fact that the account does not exist: events of a deleted account must
not cost a read each) for
``IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS`` (default 5 s; 0 reads every time), per process
and shared by its threads. So a change reaches every consumer within that time; a 410
seen by this process takes effect here at once (:func:`forget_endpoint`).

The consumer calls :func:`prefetch_accounts` with the accounts of a whole SQS batch: the
overrides that are not cached are then read with one BatchGetItem instead of one GetItem
each (entries loaded together also expire together, so the next refresh is one read too).

An account's override is its own endpoint: signed with the account's own secrets (the
global ones only for an override saved before overrides had secrets), and disabled by a
410 on its own (``owner``), whatever URL it shares with others.

Failure modes: a deleted account has no override (its queued events follow the global
settings); a secret that cannot be opened raises (the record is retried, never sent
unsigned). An id deleted and registered again is a new account: events detected before it
was registered belong to the deleted one (:meth:`WebhookTarget.predates_account`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.errors import AccountNotFoundError
from chalicelib.observability import logger
from chalicelib.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.ttlcache import TtlCache
from chalicelib.webhooks import configuration
from chalicelib.webhooks.signing import EndpointSecrets


@dataclass(frozen=True)
class WebhookTarget:
    url: str | None
    events: tuple[str, ...]
    enabled: bool
    secrets: EndpointSecrets | None
    endpoint_disabled: bool
    owner: str | None = None  # the account whose own endpoint this is; None: the global endpoint
    account_since: datetime | None = None  # when the account was registered (None: no such account)

    def predates_account(self, event_date: datetime) -> bool:
        """Whether the event was detected before its account was registered: then it is an event
        of a deleted account with the same id, and must reach neither this account's endpoint
        nor its delivery log."""
        return self.account_since is not None and event_date < self.account_since

    def skip_reason(self, event_type: str) -> str | None:
        """Why an event of this type is not sent, or None when it is."""
        if not self.enabled:
            return "webhooksDisabled"
        if not self.url:
            return "noWebhookUrl"
        if configuration.ALL_EVENTS not in self.events and event_type not in self.events:
            return "eventNotSubscribed"
        if self.endpoint_disabled:
            return "endpointDisabled"
        if self.secrets is None:
            return "noWebhookSecret"
        return None


_cache = TtlCache[Any](max_entries=4096)


@dataclass(frozen=True)
class _Override:
    url: str | None = None
    events: tuple[str, ...] | None = None
    secrets: EndpointSecrets | None = None
    since: datetime | None = None  # the account's registration (None: no such account)


def _override_of(stored: StoredAccount | None) -> _Override:
    if stored is None:
        return _Override()
    return _Override(url=stored.webhooks,
                     events=tuple(stored.webhook_events) if stored.webhook_events is not None else None,
                     secrets=configuration.account_secrets(stored) if stored.webhooks else None,
                     since=stored.created_at)


def _account_override(account_id: str) -> _Override:
    try:
        return _override_of(account_store.get_account(account_id))
    except AccountNotFoundError:
        return _override_of(None)


def prefetch_accounts(account_ids: Iterable[str]) -> None:
    """Cache the overrides of ``account_ids``; those not cached are read with one BatchGetItem
    (best effort: on failure each record's :func:`resolve_target` reads its account alone)."""
    ttl = get_settings().webhook_config_cache_seconds
    wanted = sorted({account_id for account_id in account_ids if account_id})
    if ttl <= 0 or not wanted:
        return
    batch: dict[str, StoredAccount] | None = None

    def load(account_id: str) -> _Override:
        nonlocal batch
        if batch is None:  # the first account not cached reads every account of the batch at once
            batch = account_store.get_accounts(wanted)
        return _override_of(batch.get(account_id))

    try:
        for account_id in wanted:
            _cache.get_or_load(("account", account_id), functools.partial(load, account_id), ttl)
    except Exception:  # noqa: BLE001 - only an optimisation: each record reads its own account if this fails
        logger.warning("account prefetch failed; reading accounts one by one")


def resolve_target(account_id: str, *, use_cache: bool = True) -> WebhookTarget:
    ttl = get_settings().webhook_config_cache_seconds if use_cache else 0.0
    current = _cache.get_or_load("settings", configuration.load_settings, ttl)
    override = (_cache.get_or_load(("account", account_id), lambda: _account_override(account_id), ttl)
                if account_id else _Override())
    owner = account_id if override.url else None
    secrets = override.secrets if owner else None
    if secrets is None:
        secrets = _cache.get_or_load("secrets", configuration.global_secrets, ttl)
    url = override.url or current.url
    disabled = bool(url) and _cache.get_or_load(
        ("endpoint", url, owner), lambda: configuration.is_endpoint_disabled(url, owner), ttl)
    return WebhookTarget(url=url, events=override.events if override.events is not None else current.events,
                         enabled=current.enabled, secrets=secrets, endpoint_disabled=disabled, owner=owner,
                         account_since=override.since)


def forget_endpoint(url: str, owner: str | None) -> None:
    """This process saw the endpoint's state change: stop using the cached one."""
    _cache.forget(("endpoint", url, owner))


def clear_cache() -> None:
    _cache.clear()
