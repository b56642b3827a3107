"""An OAuth2 application the provider refuses, and its recovery, for all its accounts at once.

A token endpoint answering ``invalid_client`` / ``unauthorized_client`` (or 401), or the
application being disabled here, refuses the application, not one account: the client secret
expired or was rotated at the provider, the app was deleted there. Every account of the
application is then unable to refresh, but each would find out only at its own next refresh
(up to an access token's lifetime later). So the first refresh that sees the refusal marks them all::

    refresh ── OAuthAppInvalid ──▶ mark_app_invalid(account, failure)   (API mail sessions, the token
                                                                      endpoint; the watcher with its
                                                                      own event sink)
                                 for each account of the app not already so:
                                   publish authenticationError (OAuthAppInvalid)   (event first, as
                                   state ──▶ authenticationError, lastError        the watcher does)

    PUT /v1/oauth2/{app} with a new clientSecret, or enabled: true
                              ──▶ recover_app_accounts(app)
                                 each account in authenticationError because of OAuthAppInvalid
                                 ──▶ state "new" (an edit: the watcher restarts it and logs in,
                                     announcing authenticationSuccess)

Invariants:
- One ``authenticationError`` event per account: the event id comes from
  :func:`chalicelib.sync.account_state.transition_event` on the stored state and version, the
  same id a watcher would publish for the same transition; a watcher that fails afterwards
  re-reads the stored state, finds the error already recorded and publishes nothing.
- Best effort: a failure to mark (an account changed meanwhile, SQS down) never turns the
  refresh's own answer into another error; the watcher marks each account on its own login.
- Only accounts whose ``lastError.code`` is ``OAuthAppInvalid`` are reset on recovery: a revoked
  refresh token still needs the account's own re-authorization.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.errors import ApiError, MailServerError
from chalicelib.events.publisher import EventSink, SqsEventSink
from chalicelib.observability import logger
from chalicelib.schemas.oauth2 import OAuth2AppUpdate
from chalicelib.services import oauth2_apps
from chalicelib.services.oauth2_apps import accounts_using
from chalicelib.store import accounts as account_store
from chalicelib.store.oauth2_apps import StoredApp
from chalicelib.sync.account_state import AUTHENTICATION_ERROR, DISABLED, LoginOutcome, last_error, transition_event

APP_INVALID = "OAuthAppInvalid"


def _already_marked(stored: account_store.StoredAccount) -> bool:
    return stored.state == AUTHENTICATION_ERROR and (stored.last_error or {}).get("code") == APP_INVALID


def mark_app_invalid(account_id: str, failure: MailServerError, *, sink: EventSink | None = None) -> int:
    """After ``account_id``'s refresh failed with ``failure``: when it is ``OAuthAppInvalid``, move
    every account of that application to ``authenticationError``; how many moved. ``sink``: where
    the caller publishes its events (the watcher's own; SQS by default)."""
    if failure.code != APP_INVALID:
        return 0
    try:
        trigger = account_store.get_account(account_id)
    except ApiError:
        return 0
    app_id = (trigger.oauth2 or {}).get("app")
    if not app_id or _already_marked(trigger):
        # Marked already: whoever marked it marked them all (retries do not scan the accounts again).
        return 0
    sink = sink or SqsEventSink()
    outcome = LoginOutcome(ok=False, code=APP_INVALID, response=failure.server_response, message=failure.message)
    moved = 0
    for other in accounts_using(app_id):
        try:
            stored = account_store.get_account(other)
            if stored.state == DISABLED or _already_marked(stored):
                continue
            event = transition_event(other, stored.state, stored.version, outcome, incarnation=stored.incarnation)
            if event is not None:
                sink.publish([event])
            account_store.set_account_state(other, AUTHENTICATION_ERROR, expected_state=stored.state,
                                            last_error=last_error(outcome, datetime.now(UTC).isoformat()))
            moved += 1
        except ApiError:
            continue  # changed or deleted meanwhile: its own next login decides
        except Exception:  # noqa: BLE001 - best effort, see the module docstring
            logger.warning("could not mark an account of a refused OAuth2 application",
                           extra={"app": app_id, "account": other})
    return moved


def recover_app_accounts(app_id: str) -> int:
    """Let the accounts the application's refusal stopped log in again (state ``new``); how many."""
    recovered = 0
    for account_id in accounts_using(app_id):
        try:
            stored = account_store.get_account(account_id)
            if not _already_marked(stored):
                continue
            stored.state, stored.last_error = "new", None
            account_store.replace_account(stored)
            recovered += 1
        except ApiError:
            continue  # changed or deleted meanwhile: nothing to recover
    return recovered


def update_app(app_id: str, request: OAuth2AppUpdate) -> StoredApp:
    """``PUT /v1/oauth2/{app}``; a new client secret or ``enabled: true`` is the fix of a refusal."""
    app = oauth2_apps.update_app(app_id, request)
    if request.clientSecret is not None or request.enabled is True:
        recover_app_accounts(app_id)
    return app
