"""Where one account's events go: global settings + account override, cached briefly.

A consumer handles hundreds of events per second; reading the settings, the account and
the secret for each would triple its DynamoDB traffic. :func:`resolve_target` keeps the
settings, the secret and endpoint states for ``IMAPLESS_WEBHOOK_CONFIG_CACHE_SECONDS``
(default 5 s; 0 reads every time) and reads accounts through the shared account-record
cache (``IMAPLESS_ACCOUNT_CACHE_SECONDS``), per process and shared by its threads. So a
change reaches every consumer within that time; a 410 seen by this process takes effect
here at once (:func:`forget_endpoint`).

Failure modes: a deleted account has no override (its queued events follow the global
settings); a secret that cannot be opened raises (the record is retried, never sent
unsigned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.errors import AccountNotFoundError
from chalicelib.services import account_records, webhook_settings
from chalicelib.settings import get_settings
from chalicelib.ttlcache import TtlCache


@dataclass(frozen=True)
class WebhookTarget:
    url: str | None
    events: tuple[str, ...]
    enabled: bool
    key: bytes | None
    endpoint_disabled: bool

    def skip_reason(self, event_type: str) -> str | None:
        """Why an event of this type is not sent, or None when it is."""
        if not self.enabled:
            return "webhooksDisabled"
        if not self.url:
            return "noWebhookUrl"
        if webhook_settings.ALL_EVENTS not in self.events and event_type not in self.events:
            return "eventNotSubscribed"
        if self.endpoint_disabled:
            return "endpointDisabled"
        if self.key is None:
            return "noWebhookSecret"
        return None


_cache = TtlCache[Any](max_entries=4096)


def _account_override(account_id: str) -> tuple[str | None, tuple[str, ...] | None]:
    try:
        stored = account_records.get_account_cached(account_id)
    except AccountNotFoundError:
        return None, None
    events = tuple(stored.webhook_events) if stored.webhook_events is not None else None
    return stored.webhooks, events


def resolve_target(account_id: str, *, use_cache: bool = True) -> WebhookTarget:
    ttl = get_settings().webhook_config_cache_seconds if use_cache else 0.0
    current = _cache.get_or_load("settings", webhook_settings.load_settings, ttl)
    key = _cache.get_or_load("key", webhook_settings.signing_key, ttl)
    url_override, events_override = _account_override(account_id) if account_id else (None, None)
    url = url_override or current.url
    disabled = bool(url) and _cache.get_or_load(("endpoint", url), lambda: webhook_settings.is_endpoint_disabled(url),
                                                ttl)
    return WebhookTarget(url=url, events=events_override if events_override is not None else current.events,
                         enabled=current.enabled, key=key, endpoint_disabled=disabled)


def forget_endpoint(url: str) -> None:
    """This process saw the endpoint's state change: stop using the cached one."""
    _cache.forget(("endpoint", url))


def clear_cache() -> None:
    _cache.clear()
