"""Account use cases: register (after verifying the logins), read, update, delete, verify.

Invariants:
- Secrets (passwords and access tokens) are sealed before the first write and never
  returned: reads show ``******``.
- Each protocol's login has a credential kind, kept in its stored settings as ``credentials``
  (absent: ``password``)::

      kind          sealed secret                       login              refreshed
      password      the password                        LOGIN / AUTH PLAIN  -
      accessToken   an access token the caller manages  XOAUTH2            never (a PUT brings a new one)
      oauth2App     refresh + access token, in          XOAUTH2            by us, through the OAuth2
                    ``sealed_oauth2`` (not the secrets)                     application (services.oauth2_tokens)

  An ``oauth2App`` account's IMAP and SMTP settings come from its application's provider
  (``app`` in the stored settings names it); its tokens resolve to a current access token
  before the adapters log in exactly as for ``accessToken`` (``MailServer.login == "oauth2"``).
- Registration and credential changes verify the IMAP (and SMTP) login first unless the
  caller passes ``verify: false``; a failed verification stores nothing.
- A stored secret only ever goes to the server it was given for: an update that changes
  where or how a login is sent (host, port, secure, tls, user) must carry that password
  (or access token) again, or it is refused (``CredentialsRequired``) before any connection,
  verified or not.
- Once create returns, the account's mailbox endpoints work (they open their own IMAP
  sessions from the stored record; nothing waits for the watcher).
- Every registration draws a new incarnation, and an id registered again starts from
  nothing (deletion: :mod:`.account_deletion`).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from chalicelib.errors import (
    AccountExistsError,
    CredentialsRequiredError,
    MailServerError,
    OAuth2AppNotFoundError,
    RateLimitedError,
    ValidationError,
)
from chalicelib.imap import session as imap_session
from chalicelib.incarnations import LEGACY, new_incarnation
from chalicelib.oauth2.refresh_rules import refresh_needed
from chalicelib.schemas.accounts import (
    MASKED_PASSWORD,
    AccountCreate,
    AccountError,
    AccountOut,
    AccountState,
    AccountUpdate,
    ImapSettingsOut,
    OAuth2Login,
    OAuth2Out,
    OAuth2UserOut,
    ServerAuth,
    ServerAuthOut,
    ServerAuthUpdate,
    ServerSettings,
    ServerSettingsOut,
    ServerSettingsUpdate,
    TlsSettings,
    VerifyRequest,
    VerifyResponse,
    VerifyResult,
)
from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.security.transport import LoginMethod, MailServer, TlsOptions
from chalicelib.services import account_events, account_records, oauth2_apps, oauth2_tokens, webhook_settings
from chalicelib.settings import get_settings
from chalicelib.smtp import session as smtp_session
from chalicelib.store import accounts as account_store
from chalicelib.store import rate_limits
from chalicelib.store.accounts import StoredAccount
from chalicelib.store.oauth2_apps import StoredApp
from chalicelib.sync import account_state

Verifier = Callable[[MailServer, str], Any]
VERIFY_SCOPE = "verifyAccount"
VERIFY_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class AccountCredentials:
    """What the mail adapters need to open sessions for one account."""

    account: str
    imap: MailServer | None
    # The password or access token, as ``imap.login`` says; out of the repr, so logging this never shows it.
    imap_secret: str | None = field(repr=False)
    smtp: MailServer | None
    smtp_secret: str | None = field(repr=False)
    incarnation: str = LEGACY
    # The secrets are access tokens we refresh: after a server refuses one, ask again with
    # ``load_credentials(account, rejected=that token)`` for a refreshed one.
    refreshable: bool = False


CredentialKind = Literal["password", "accessToken", "oauth2App"]
PASSWORD: CredentialKind = "password"  # noqa: S105 - a credential kind, not a password
ACCESS_TOKEN: CredentialKind = "accessToken"  # noqa: S105 - a credential kind, not a token
OAUTH2_APP: CredentialKind = "oauth2App"
_LOGIN_METHODS: dict[str, LoginMethod] = {PASSWORD: "password", ACCESS_TOKEN: "oauth2", OAUTH2_APP: "oauth2"}
# What the API calls each kind's secret (field names of ``auth``).
_SECRET_FIELDS: dict[str, str] = {PASSWORD: "pass", ACCESS_TOKEN: "accessToken"}


def _credential_kind(config: dict[str, Any] | None) -> CredentialKind:
    kind = (config or {}).get("credentials")
    return kind if kind in (ACCESS_TOKEN, OAUTH2_APP) else PASSWORD


def is_oauth2_app(stored: StoredAccount) -> bool:
    return _credential_kind(stored.imap) == OAUTH2_APP


def _set_credential_kind(config: dict[str, Any], kind: CredentialKind) -> None:
    # Absent means password: records written before access tokens existed read the same.
    if kind == PASSWORD:
        config.pop("credentials", None)
    else:
        config["credentials"] = kind


def _given_secret(auth: ServerAuth | ServerAuthUpdate | None) -> tuple[CredentialKind, str] | None:
    """The kind and value of the secret a request brings (the schemas allow at most one)."""
    if auth is None:
        return None
    if auth.accessToken is not None:
        return ACCESS_TOKEN, auth.accessToken.get_secret_value()
    if auth.password is not None:
        return PASSWORD, auth.password.get_secret_value()
    return None


def _required_secret(auth: ServerAuth) -> tuple[CredentialKind, str]:
    given = _given_secret(auth)
    assert given is not None, "ServerAuth requires pass or accessToken"
    return given


def _encryption_context(account_id: str) -> dict[str, str]:
    return {"purpose": "account-credentials", "account": account_id}


def _server_config(settings: ServerSettings) -> dict[str, Any]:
    config: dict[str, Any] = {"host": settings.host, "port": settings.port, "secure": settings.secure,
                              "user": settings.auth.user, "tls": settings.tls.model_dump()}
    _set_credential_kind(config, _required_secret(settings.auth)[0])
    if getattr(settings, "disabled", False):  # IMAP only (ImapSettings)
        config["disabled"] = True
    return config


def _state_after_edit(imap: dict[str, Any] | None) -> str:
    """A new or re-enabled login starts over as "new" (the watcher picks it up); a disabled one
    is left alone by the watcher (it is not in WATCHABLE_STATES)."""
    return account_state.DISABLED if imap and imap.get("disabled") else "new"


def _mail_server(config: dict[str, Any]) -> MailServer:
    tls = config.get("tls") or {}
    return MailServer(host=config["host"], port=int(config["port"]), secure=bool(config["secure"]),
                      user=config["user"], login=_LOGIN_METHODS[_credential_kind(config)],
                      tls=TlsOptions(reject_unauthorized=tls.get("rejectUnauthorized", True),
                                     min_version=tls.get("minVersion", "TLSv1.2"),
                                     allow_plaintext_auth=tls.get("allowPlaintextAuth", False)))


def mail_server_from_settings(settings: ServerSettings) -> MailServer:
    return _mail_server(_server_config(settings))


def _verify(protocol: str, server: MailServer, secret: str) -> None:
    verifier: Verifier = imap_session.verify_login if protocol == "imap" else smtp_session.verify_login
    verifier(server, secret)


def new_account_id() -> str:
    return "acc_" + secrets.token_hex(8)


def _app_of(app_id: str) -> StoredApp:
    try:
        return oauth2_apps.get_app(app_id)
    except OAuth2AppNotFoundError:
        raise ValidationError(f"OAuth2 application {app_id!r} does not exist",
                              details={"oauth2.provider": "no such OAuth2 application"}) from None


def _app_configs(app: StoredApp, user: str, disabled: bool = False) -> dict[str, dict[str, Any] | None]:
    """The account's IMAP and SMTP settings: the application provider's servers."""
    provider = oauth2_apps.provider_settings(app)
    configs: dict[str, dict[str, Any] | None] = {"imap": None, "smtp": None}
    for protocol, endpoint in (("imap", provider.imap), ("smtp", provider.smtp)):
        if endpoint is not None:
            configs[protocol] = {"host": endpoint.host, "port": endpoint.port, "secure": endpoint.secure,
                                 "user": user, "tls": TlsSettings().model_dump(), "credentials": OAUTH2_APP,
                                 "app": app.id}
    if disabled and configs["imap"] is not None:
        configs["imap"]["disabled"] = True
    return configs


def _usable_tokens(app: StoredApp, tokens: oauth2_tokens.Tokens,
                   scopes: list[str] | None) -> tuple[oauth2_tokens.Tokens, list[str] | None]:
    """The tokens to verify with: the given access token while it is good, else a refreshed one."""
    if tokens.access_token and not refresh_needed(tokens.state(), datetime.now(UTC),
                                                  ahead_seconds=get_settings().oauth2_refresh_ahead_seconds):
        return tokens, scopes
    granted, granted_scopes = oauth2_tokens.request_tokens(app, tokens)
    return granted, granted_scopes or scopes


def _verify_oauth2(app: StoredApp, configs: dict[str, dict[str, Any] | None], tokens: oauth2_tokens.Tokens,
                   scopes: list[str] | None) -> tuple[oauth2_tokens.Tokens, list[str] | None]:
    tokens, scopes = _usable_tokens(app, tokens, scopes)
    assert tokens.access_token is not None
    for protocol, config in configs.items():
        if config is not None:
            _verify(protocol, _mail_server(config), tokens.access_token)
    return tokens, scopes


def _create_oauth2_account(account_id: str, request: AccountCreate) -> StoredAccount:
    login = request.oauth2
    assert login is not None
    app = _app_of(login.provider)
    configs = _app_configs(app, login.auth.user)
    tokens = oauth2_tokens.Tokens(login.refreshToken.get_secret_value(),
                                  login.accessToken.get_secret_value() if login.accessToken else None,
                                  login.expires)
    scopes: list[str] | None = list(oauth2_apps.provider_settings(app).scopes)
    if request.verify:
        if account_store.account_exists(account_id):
            raise AccountExistsError(f"account {account_id!r} already exists", details={"account": account_id})
        tokens, scopes = _verify_oauth2(app, configs, tokens, scopes)
    now = datetime.now(UTC)
    stored = StoredAccount(
        account=account_id, name=request.name, email=request.email, state=_state_after_edit(configs["imap"]),
        imap=configs["imap"], smtp=configs["smtp"],
        sealed_secrets=seal_secret(json.dumps({}), _encryption_context(account_id)),
        created_at=now, updated_at=now, incarnation=new_incarnation(),
        oauth2=oauth2_tokens.metadata(app.id, login.auth.user, tokens.expires, scopes),
        sealed_oauth2=oauth2_tokens.seal_tokens(account_id, tokens))
    return account_store.insert_account(stored)


def create_account(request: AccountCreate) -> StoredAccount:
    """Verify (unless told not to), store and announce (``accountAdded``) a new account."""
    account_id = request.account or new_account_id()
    stored = (_create_oauth2_account(account_id, request) if request.oauth2 is not None
              else _create_password_account(account_id, request))
    account_events.announce_added(stored.account, stored.incarnation)
    return stored


def _create_password_account(account_id: str, request: AccountCreate) -> StoredAccount:
    assert request.imap is not None  # AccountCreate: imap or oauth2
    passwords = {"imap": _required_secret(request.imap.auth)[1]}
    configs = {"imap": _server_config(request.imap), "smtp": None}
    if request.smtp is not None:
        passwords["smtp"] = _required_secret(request.smtp.auth)[1]
        configs["smtp"] = _server_config(request.smtp)
    if request.verify:
        # A duplicate id fails fast, before we spend seconds logging in to servers.
        if account_store.account_exists(account_id):
            raise AccountExistsError(f"account {account_id!r} already exists", details={"account": account_id})
        for protocol, config in configs.items():
            if config is not None:
                _verify(protocol, _mail_server(config), passwords[protocol])
    now = datetime.now(UTC)
    stored = StoredAccount(
        account=account_id, name=request.name, email=request.email, state=_state_after_edit(configs["imap"]),
        imap=configs["imap"], smtp=configs["smtp"],
        sealed_secrets=seal_secret(json.dumps(passwords), _encryption_context(account_id)),
        created_at=now, updated_at=now, incarnation=new_incarnation())
    return account_store.insert_account(stored)


def _server_fields(config: dict) -> dict:
    kind = _credential_kind(config)
    auth = (ServerAuthOut(user=config["user"], password=None, accessToken=MASKED_PASSWORD) if kind == ACCESS_TOKEN
            else ServerAuthOut(user=config["user"], password=None) if kind == OAUTH2_APP
            else ServerAuthOut(user=config["user"]))
    return {"host": config["host"], "port": config["port"], "secure": config["secure"],
            "auth": auth, "tls": TlsSettings.model_validate(config.get("tls") or {})}


def _server_out(config: dict | None) -> ServerSettingsOut | None:
    return ServerSettingsOut(**_server_fields(config)) if config else None


def _imap_out(config: dict | None) -> ImapSettingsOut | None:
    return ImapSettingsOut(**_server_fields(config), disabled=bool(config.get("disabled"))) if config else None


def _oauth2_out(meta: dict[str, Any] | None) -> OAuth2Out | None:
    if not meta:
        return None
    expires = meta.get("expires")
    return OAuth2Out(provider=meta["app"], auth=OAuth2UserOut(user=meta["user"]),
                     expires=datetime.fromisoformat(expires) if expires else None, scopes=meta.get("scopes"))


def account_out(stored: StoredAccount) -> AccountOut:
    # The store keeps the state as a plain string; the models validate it.
    return AccountOut(account=stored.account, name=stored.name, email=stored.email,
                      state=cast(AccountState, stored.state),
                      imap=_imap_out(stored.imap), smtp=_server_out(stored.smtp),
                      oauth2=_oauth2_out(stored.oauth2) if is_oauth2_app(stored) else None,
                      createdAt=stored.created_at, updatedAt=stored.updated_at,
                      lastError=AccountError(**stored.last_error) if stored.last_error else None,
                      webhooks=stored.webhooks, webhookEvents=stored.webhook_events,
                      webhookSecretSet=stored.sealed_webhook_secret is not None)


def get_account(account_id: str) -> StoredAccount:
    return account_store.get_account(account_id)


def _matches(account: StoredAccount, needle: str) -> bool:
    return any(needle in text.casefold() for text in (account.account, account.name, account.email) if text)


def list_accounts(page: int, page_size: int, only: str | None = None, states: frozenset[str] | None = None,
                  query: str | None = None) -> tuple[list[StoredAccount], int, int]:
    """One page of the matching accounts plus (total, pages), both counting matches only.

    ``only`` restricts to one id (bound tokens); ``states`` to stored states; ``query`` to
    accounts whose id, name or email contains it, ignoring case. Filters apply before paging."""
    accounts = account_store.list_accounts()
    if only is not None:
        accounts = [a for a in accounts if a.account == only]
    if states is not None:
        accounts = [a for a in accounts if a.state in states]
    if query:
        needle = query.casefold()
        accounts = [a for a in accounts if _matches(a, needle)]
    total = len(accounts)
    pages = max(1, math.ceil(total / page_size))
    return accounts[page * page_size:(page + 1) * page_size], total, pages


def _merge_server(current: dict[str, Any] | None, current_password: str | None,
                  update: ServerSettingsUpdate, protocol: str) -> tuple[dict[str, Any], str]:
    base = dict(current or {})
    if update.host is not None:
        base["host"] = update.host
    if update.port is not None:
        base["port"] = update.port
    if update.secure is not None:
        base["secure"] = update.secure
    if update.tls is not None:
        base["tls"] = update.tls.model_dump()
    disabled = getattr(update, "disabled", None)  # IMAP only (ImapSettingsUpdate)
    if disabled is not None:
        base.pop("disabled", None)
        if disabled:
            base["disabled"] = True
    base.setdefault("secure", False)
    base.setdefault("tls", TlsSettings().model_dump())
    password = current_password
    if update.auth is not None and update.auth.user is not None:
        base["user"] = update.auth.user
    given = _given_secret(update.auth)
    if given is not None:
        kind, password = given
        _set_credential_kind(base, kind)
    missing = [name for name in ("host", "port", "user") if name not in base]
    if password is None:
        missing.append("auth.pass")
    if missing or password is None:
        raise ValidationError(f"{protocol} settings are incomplete",
                              details={f"{protocol}.{name}": "field required" for name in missing})
    return base, password


def _destination(config: dict[str, Any]) -> dict[str, Any]:
    """Where and how a login is sent, by API field name (``host``, ``tls.minVersion``, ...)."""
    fields = {"host": config.get("host"), "port": config.get("port"), "secure": bool(config.get("secure")),
              "auth.user": config.get("user")}
    tls = {**TlsSettings().model_dump(), **(config.get("tls") or {})}
    fields.update({f"tls.{name}": value for name, value in tls.items()})
    return fields


def _require_password_for_new_destination(protocol: str, current: dict[str, Any] | None,
                                          merged: dict[str, Any], update: ServerSettingsUpdate) -> None:
    """Refuse to send a stored password anywhere, or any way, other than where it was given for.

    Otherwise a token holder could point the account at a server of their own (or turn on
    ``allowPlaintextAuth``) and collect the password at the next login. Setting a field to
    its current value is not a change.
    """
    if current is None or _given_secret(update.auth) is not None:
        return
    before, after = _destination(current), _destination(merged)
    changed = [f"{protocol}.{name}" for name, value in after.items() if value != before[name]]
    if not changed:
        return
    names = changed[0] if len(changed) == 1 else ", ".join(changed[:-1]) + " and " + changed[-1]
    verb = "changes" if len(changed) == 1 else "change"
    kind = _credential_kind(current)
    field = f"{protocol}.auth.{_SECRET_FIELDS[kind]}"
    what = "password" if kind == PASSWORD else "access token"
    raise CredentialsRequiredError(
        f"{protocol} settings change where or how the {what} is sent: send {field} with them",
        details={field: f"required when {names} {verb}"})


def _login_of(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a login depends on (everything but the ``disabled`` switch)."""
    return None if config is None else {key: value for key, value in config.items() if key != "disabled"}


def update_account(account_id: str, request: AccountUpdate, *,
                   metered_token: str | None = None) -> tuple[StoredAccount, str | None]:
    """The updated account, and the new secret of its webhook override when this update gave
    it one (to be shown once).

    ``metered_token``: verifying new settings connects to a server the caller chose, so for a
    caller who may not use ``POST /v1/verifyAccount`` (an account-bound token) each such
    verification counts against the same per-token allowance; a PUT is no way around it.
    """
    stored = account_store.get_account(account_id)
    if is_oauth2_app(stored) or request.oauth2 is not None:
        return _update_oauth2_account(stored, request, metered_token=metered_token)
    passwords: dict[str, str] = json.loads(open_secret(stored.sealed_secrets, _encryption_context(account_id)))
    changed_protocols: list[str] = []
    was_disabled = bool((stored.imap or {}).get("disabled"))
    for protocol in ("imap", "smtp"):
        update: ServerSettingsUpdate | None = getattr(request, protocol)
        if update is None:
            continue
        current = getattr(stored, protocol)
        merged, password = _merge_server(current, passwords.get(protocol), update, protocol)
        _require_password_for_new_destination(protocol, current, merged, update)
        if _login_of(merged) != _login_of(current) or password != passwords.get(protocol):
            changed_protocols.append(protocol)
        setattr(stored, protocol, merged)
        passwords[protocol] = password
    if request.verify:
        if changed_protocols and metered_token is not None:
            take_verification_allowance(metered_token)
        for protocol in changed_protocols:
            _verify(protocol, _mail_server(getattr(stored, protocol)), passwords[protocol])
    if "name" in request.model_fields_set:
        stored.name = request.name
    if request.email is not None:
        stored.email = request.email
    webhook_secret = webhook_settings.apply_account_override(stored, request)  # -- webhooks: per-account override --
    if changed_protocols:
        stored.sealed_secrets = seal_secret(json.dumps(passwords), _encryption_context(account_id))
    if "imap" in changed_protocols or was_disabled != bool((stored.imap or {}).get("disabled")):
        stored.state = _state_after_edit(stored.imap)
        stored.last_error = None  # the error was about the login it replaces
    replaced = account_store.replace_account(stored)
    account_records.forget_account(account_id)  # -- mail API: cached reads --
    return replaced, webhook_secret


def _update_oauth2_account(stored: StoredAccount, request: AccountUpdate, *,
                           metered_token: str | None) -> tuple[StoredAccount, str | None]:
    """PUT on an OAuth2 account (or one becoming one): ``oauth2`` changes the login (a new
    ``refreshToken`` re-authorizes it); ``imap`` may only switch ``disabled``; servers come
    from the application."""
    account_id = stored.account
    imap = request.imap
    if request.smtp is not None or (imap is not None and imap.model_fields_set - {"disabled"}):
        raise ValidationError("an OAuth2 account's servers come from its OAuth2 application",
                              details={"imap" if request.smtp is None else "smtp": "only imap.disabled may change"})
    login = request.oauth2
    current = stored.oauth2 if is_oauth2_app(stored) else None
    app_id = (login.provider if login and login.provider else None) or (current or {}).get("app")
    user = (login.auth.user if login and login.auth and login.auth.user else None) or (current or {}).get("user")
    refresh = login.refreshToken.get_secret_value() if login and login.refreshToken else None
    if app_id is None or user is None:
        raise ValidationError("oauth2 settings are incomplete",
                              details={f"oauth2.{name}": "field required"
                                       for name, value in (("provider", app_id), ("auth.user", user)) if value is None})
    if refresh is None and (current is None or app_id != current.get("app") or user != current.get("user")):
        # A refresh token belongs to one client and one user.
        raise CredentialsRequiredError("a new OAuth2 application or user needs a new refresh token: send "
                                       "oauth2.refreshToken with it",
                                       details={"oauth2.refreshToken": "required when provider or auth.user changes"})
    app = _app_of(app_id)
    disabled = bool((stored.imap or {}).get("disabled")) if imap is None or imap.disabled is None else imap.disabled
    was_disabled = bool((stored.imap or {}).get("disabled"))
    configs = _app_configs(app, user, disabled)
    login_changed = login is not None and bool(login.model_fields_set - {"auth"} or refresh or user !=
                                               (current or {}).get("user"))
    if login_changed:
        old = oauth2_tokens.open_tokens(stored) if current is not None else None
        tokens = oauth2_tokens.Tokens(refresh or (old.refresh_token if old else ""),
                                      login.accessToken.get_secret_value() if login and login.accessToken else None,
                                      login.expires if login else None)
        scopes: list[str] | None = list(oauth2_apps.provider_settings(app).scopes)
        if request.verify:
            if metered_token is not None:
                take_verification_allowance(metered_token)
            tokens, scopes = _verify_oauth2(app, configs, tokens, scopes)
        stored.oauth2 = oauth2_tokens.metadata(app.id, user, tokens.expires, scopes)
        stored.sealed_oauth2 = oauth2_tokens.seal_tokens(account_id, tokens)
        if current is None:  # a password account becoming an OAuth2 one keeps no password
            stored.sealed_secrets = seal_secret(json.dumps({}), _encryption_context(account_id))
    stored.imap, stored.smtp = configs["imap"], configs["smtp"]
    if "name" in request.model_fields_set:
        stored.name = request.name
    if request.email is not None:
        stored.email = request.email
    webhook_secret = webhook_settings.apply_account_override(stored, request)  # -- webhooks: per-account override --
    if login_changed or was_disabled != disabled:
        stored.state = _state_after_edit(stored.imap)
        stored.last_error = None  # the error was about the login it replaces
    replaced = account_store.replace_account(stored)
    account_records.forget_account(account_id)  # -- mail API: cached reads --
    return replaced, webhook_secret


def load_credentials(account_id: str, *, rejected: str | None = None) -> AccountCredentials:
    """Decrypt an account's credentials for a mail session (kept in memory only).

    An OAuth2 account's secret is a current access token, refreshed first when due, or when
    ``rejected`` (the access token a server just refused) is still the stored one.
    """
    stored = account_store.get_account(account_id)
    if is_oauth2_app(stored):
        token = oauth2_tokens.access_token(account_id, rejected=rejected)
        return AccountCredentials(
            account=account_id, imap=_mail_server(stored.imap) if stored.imap else None, imap_secret=token,
            smtp=_mail_server(stored.smtp) if stored.smtp else None, smtp_secret=token,
            incarnation=stored.incarnation, refreshable=True)
    passwords = json.loads(open_secret(stored.sealed_secrets, _encryption_context(account_id)))
    return AccountCredentials(
        account=account_id,
        imap=_mail_server(stored.imap) if stored.imap else None, imap_secret=passwords.get("imap"),
        smtp=_mail_server(stored.smtp) if stored.smtp else None, smtp_secret=passwords.get("smtp"),
        incarnation=stored.incarnation)


def refreshed_imap_credentials(account_id: str, credentials: AccountCredentials,
                               ) -> Callable[[AccountCredentials], AccountCredentials] | None:
    """How to get ``account_id``'s credentials again after a server refused their IMAP secret
    (:func:`chalicelib.token_refusal.login_refreshing_once`); None when they cannot be refreshed."""
    if not credentials.refreshable:
        return None
    return lambda refused: load_credentials(account_id, rejected=refused.imap_secret)


def take_verification_allowance(token_id: str) -> None:
    """Count one connection to a caller-chosen server against ``token_id``'s allowance.

    Verification connects wherever the caller says, so each token may do it only
    ``IMAPLESS_VERIFY_ACCOUNT_PER_MINUTE`` times a minute, counted across every process
    (429 ``RateLimited`` beyond it): enough to check settings, too few to scan a network.
    """
    limit = get_settings().verify_account_per_minute
    decision = rate_limits.take(VERIFY_SCOPE, token_id, limit=limit, window_seconds=VERIFY_WINDOW_SECONDS)
    if not decision.allowed:
        raise RateLimitedError(f"this token may verify settings {limit} times a minute; retry in "
                               f"{decision.retry_after} s", retry_after=decision.retry_after)


def verify_account(request: VerifyRequest, token_id: str) -> VerifyResponse:
    """Try the logins of ``request`` for the caller holding ``token_id``, within its allowance."""
    take_verification_allowance(token_id)
    if request.oauth2 is not None:
        return verify_oauth2_login(request.oauth2)
    return VerifyResponse(
        imap=verify_settings("imap", request.imap) if request.imap else None,
        smtp=verify_settings("smtp", request.smtp) if request.smtp else None)


def verify_oauth2_login(login: OAuth2Login) -> VerifyResponse:
    """Obtain an access token through the application (unless a good one is given) and log in to
    each of its provider's servers with it; report each outcome, store nothing."""
    app = _app_of(login.provider)
    configs = _app_configs(app, login.auth.user)
    tokens = oauth2_tokens.Tokens(login.refreshToken.get_secret_value(),
                                  login.accessToken.get_secret_value() if login.accessToken else None,
                                  login.expires)
    results: dict[str, VerifyResult] = {}
    try:
        tokens, _ = _usable_tokens(app, tokens, None)
    except MailServerError as exc:
        # No access token, no login: each server's result is the token endpoint's refusal.
        failed = VerifyResult(success=False, code=exc.code, error=exc.message, serverResponse=exc.server_response)
        return VerifyResponse(**{protocol: failed for protocol, config in configs.items() if config is not None})
    assert tokens.access_token is not None
    for protocol, config in configs.items():
        if config is None:
            continue
        try:
            _verify(protocol, _mail_server(config), tokens.access_token)
            results[protocol] = VerifyResult(success=True)
        except MailServerError as exc:
            results[protocol] = VerifyResult(success=False, code=exc.code, error=exc.message,
                                             serverResponse=exc.server_response)
    return VerifyResponse(**results)


def verify_settings(protocol: str, settings: ServerSettings) -> VerifyResult:
    """Try a login without saving anything; report the outcome instead of raising."""
    try:
        _verify(protocol, mail_server_from_settings(settings), _required_secret(settings.auth)[1])
    except MailServerError as exc:
        return VerifyResult(success=False, code=exc.code, error=exc.message, serverResponse=exc.server_response)
    return VerifyResult(success=True)
