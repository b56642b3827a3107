"""Where one account's events go: global settings + account override, read once per batch.

A settings change must apply to every event published after ``POST /v1/settings`` (or an
account's ``PUT``) returns: an event of a newly selected type must not be dropped, a
disabled type must not be sent. So nothing here is cached across SQS batches: the consumer
builds one :class:`TargetReader` per batch, which reads the settings (one consistent
BatchGetItem), the global secrets, endpoint states and the batch's accounts (one
BatchGetItem, :meth:`TargetReader.prefetch_accounts`) at most once each, for that batch
only, shared by its group threads.

Why per batch and not a settings version stamped on each event at publish: the event is
published by the watcher, which would then need to read the settings version for every
event (or cache it, which brings the staleness back), and a stamped version says only
that the event is newer, not what the consumer should read. Reading per batch costs a few
reads per ten records and is correct by construction: a batch received after the call
returned reads after the write, and the reads are consistent.

An account's override is its own endpoint: signed with the account's own secrets (the
global ones only for an override saved before overrides had secrets), and disabled by a
410 on its own (``owner``), whatever URL it shares with others. A 410 seen during a batch
takes effect for that batch's later records at once (:meth:`TargetReader.forget_endpoint`).

``inboxNewOnly`` (EmailEngine's) drops ``messageNew`` events of messages outside the inbox,
for the global endpoint and the account ones alike (EmailEngine applies it to every target
but its custom routes). What counts as the inbox is EmailEngine's test
(:func:`in_inbox`): the folder named INBOX, a folder with the ``\\Inbox`` special use, or a
message carrying the ``\\Inbox`` label (Gmail: a new message in All Mail that is also in
the inbox counts; one that only has other labels does not).

Failure modes: a deleted account has no override (its queued events follow the global
settings); a secret that cannot be opened raises (the record is retried, never sent
unsigned). An id deleted and registered again is a new account: events detected before it
was registered belong to the deleted one (:meth:`WebhookTarget.predates_account`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.errors import AccountNotFoundError
from chalicelib.events.model import Event
from chalicelib.observability import logger
from chalicelib.store import accounts as account_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.webhooks import configuration
from chalicelib.webhooks.signing import EMAILENGINE_SIGNATURE, EndpointSecrets

INBOX_SPECIAL_USE = "\\Inbox"


def in_inbox(event: Event) -> bool:
    """Whether the event's message is in the inbox, by EmailEngine's ``inboxNewOnly`` test."""
    # INBOX is the one case-insensitive mailbox name (RFC 3501 5.1).
    if event.path is not None and event.path.upper() == "INBOX":
        return True
    if INBOX_SPECIAL_USE in (event.specialUse, event.data.get("messageSpecialUse")):
        return True
    labels = event.data.get("labels")
    return isinstance(labels, list) and INBOX_SPECIAL_USE in labels


@dataclass(frozen=True)
class WebhookTarget:
    url: str | None
    events: tuple[str, ...]
    enabled: bool
    secrets: EndpointSecrets | None
    endpoint_disabled: bool
    owner: str | None = None  # the account whose own endpoint this is; None: the global endpoint
    account_since: datetime | None = None  # when the account was registered (None: no such account)
    inbox_new_only: bool = False
    service_secret: str | None = None  # set: also sign EmailEngine's way (webhooksSignature "emailengine")

    def predates_account(self, event_date: datetime) -> bool:
        """Whether the event was detected before its account was registered: then it is an event
        of a deleted account with the same id, and must reach neither this account's endpoint
        nor its delivery log."""
        return self.account_since is not None and event_date < self.account_since

    def skip_reason(self, event: Event) -> str | None:
        """Why ``event`` is not sent, or None when it is."""
        if not self.enabled:
            return "webhooksDisabled"
        if not self.url:
            return "noWebhookUrl"
        if configuration.ALL_EVENTS not in self.events and event.event not in self.events:
            return "eventNotSubscribed"
        if self.inbox_new_only and event.event == "messageNew" and not in_inbox(event):
            return "notInInbox"
        if self.endpoint_disabled:
            return "endpointDisabled"
        if self.secrets is None:
            return "noWebhookSecret"
        return None


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


class TargetReader:
    """The webhook configuration as read for one batch: each item at most once, on first use.

    Thread-safe (a batch's groups run on threads); a failed read is not kept (asked again)."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def _get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._values:
                return self._values[key]
        value = load()  # outside the lock: a slow read must not hold the other groups back
        with self._lock:
            return self._values.setdefault(key, value)

    def prefetch_accounts(self, account_ids: Iterable[str]) -> None:
        """Read the overrides of ``account_ids`` with one BatchGetItem (best effort: on failure
        each record's :meth:`resolve` reads its account alone)."""
        wanted = sorted({account_id for account_id in account_ids if account_id})
        if not wanted:
            return
        try:
            batch = account_store.get_accounts(wanted)
            overrides = {account_id: _override_of(batch.get(account_id)) for account_id in wanted}
        except Exception:  # noqa: BLE001 - only an optimisation: each record reads its own account if this fails
            logger.warning("account prefetch failed; reading accounts one by one")
            return
        with self._lock:
            for account_id, override in overrides.items():
                self._values.setdefault(("account", account_id), override)

    def resolve(self, account_id: str) -> WebhookTarget:
        current: configuration.WebhookSettings = self._get("settings", configuration.load_settings)
        override: _Override = (self._get(("account", account_id), lambda: _account_override(account_id))
                               if account_id else _Override())
        owner = account_id if override.url else None
        secrets = override.secrets if owner else None
        if secrets is None:
            secrets = self._get("secrets", configuration.global_secrets)
        url = override.url or current.url
        disabled = bool(url) and bool(self._get(
            ("endpoint", url, owner), functools.partial(configuration.is_endpoint_disabled, url or "", owner)))
        service_secret = (self._get("serviceSecret", configuration.service_secret)
                          if current.signature == EMAILENGINE_SIGNATURE else None)
        return WebhookTarget(url=url, events=override.events if override.events is not None else current.events,
                             enabled=current.enabled, secrets=secrets, endpoint_disabled=disabled, owner=owner,
                             account_since=override.since, inbox_new_only=current.inbox_new_only,
                             service_secret=service_secret)

    def forget_endpoint(self, url: str, owner: str | None) -> None:
        """The endpoint's state changed during this batch (a 410): read it again."""
        with self._lock:
            self._values.pop(("endpoint", url, owner), None)


def resolve_target(account_id: str) -> WebhookTarget:
    """The target of ``account_id`` as stored now (a fresh read of everything it needs)."""
    return TargetReader().resolve(account_id)
