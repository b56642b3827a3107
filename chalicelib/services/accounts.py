"""Account use cases: register (after verifying the logins), read, update, delete, verify.

Invariants:
- Passwords are sealed before the first write and never returned: reads show ``******``.
- Registration and credential changes verify the IMAP (and SMTP) login first unless the
  caller passes ``verify: false``; a failed verification stores nothing.
- Once create returns, the account's mailbox endpoints work (they open their own IMAP
  sessions from the stored record; nothing waits for the watcher).
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import AccountExistsError, MailServerError, ValidationError
from chalicelib.imap import session as imap_session
from chalicelib.schemas.accounts import (
    AccountCreate,
    AccountUpdate,
    ServerSettings,
    ServerSettingsUpdate,
    TlsSettings,
    VerifyResult,
)
from chalicelib.security.envelope import open_secret, seal_secret
from chalicelib.security.transport import MailServer, TlsOptions
from chalicelib.services import account_records, tokens, webhook_settings
from chalicelib.smtp import session as smtp_session
from chalicelib.store import accounts as account_store
from chalicelib.store import checkpoints as checkpoint_store
from chalicelib.store import tokens as token_store
from chalicelib.store.accounts import StoredAccount
from chalicelib.sync import account_state

Verifier = Callable[[MailServer, str], Any]


@dataclass(frozen=True)
class AccountCredentials:
    """What the mail adapters need to open sessions for one account."""

    account: str
    imap: MailServer | None
    imap_password: str | None
    smtp: MailServer | None
    smtp_password: str | None


def _encryption_context(account_id: str) -> dict[str, str]:
    return {"purpose": "account-credentials", "account": account_id}


def _server_config(settings: ServerSettings) -> dict[str, Any]:
    config = {"host": settings.host, "port": settings.port, "secure": settings.secure,
              "user": settings.auth.user, "tls": settings.tls.model_dump()}
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
                      user=config["user"],
                      tls=TlsOptions(reject_unauthorized=tls.get("rejectUnauthorized", True),
                                     min_version=tls.get("minVersion", "TLSv1.2"),
                                     allow_plaintext_auth=tls.get("allowPlaintextAuth", False)))


def mail_server_from_settings(settings: ServerSettings) -> MailServer:
    return _mail_server(_server_config(settings))


def _verify(protocol: str, server: MailServer, password: str) -> None:
    verifier: Verifier = imap_session.verify_login if protocol == "imap" else smtp_session.verify_login
    verifier(server, password)


def new_account_id() -> str:
    return "acc_" + secrets.token_hex(8)


def create_account(request: AccountCreate) -> StoredAccount:
    account_id = request.account or new_account_id()
    passwords = {"imap": request.imap.auth.password.get_secret_value()}
    configs = {"imap": _server_config(request.imap), "smtp": None}
    if request.smtp is not None:
        passwords["smtp"] = request.smtp.auth.password.get_secret_value()
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
        created_at=now, updated_at=now)
    return account_store.insert_account(stored)


def get_account(account_id: str) -> StoredAccount:
    return account_store.get_account(account_id)


def list_accounts(page: int, page_size: int, only: str | None = None) -> tuple[list[StoredAccount], int, int]:
    """One page of accounts plus (total, pages). ``only`` restricts to one id (bound tokens)."""
    accounts = account_store.list_accounts()
    if only is not None:
        accounts = [a for a in accounts if a.account == only]
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
    if update.auth is not None:
        if update.auth.user is not None:
            base["user"] = update.auth.user
        if update.auth.password is not None:
            password = update.auth.password.get_secret_value()
    missing = [name for name in ("host", "port", "user") if name not in base]
    if password is None:
        missing.append("auth.pass")
    if missing or password is None:
        raise ValidationError(f"{protocol} settings are incomplete",
                              details={f"{protocol}.{name}": "field required" for name in missing})
    return base, password


def _login_of(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a login depends on (everything but the ``disabled`` switch)."""
    return None if config is None else {key: value for key, value in config.items() if key != "disabled"}


def update_account(account_id: str, request: AccountUpdate) -> StoredAccount:
    stored = account_store.get_account(account_id)
    passwords: dict[str, str] = json.loads(open_secret(stored.sealed_secrets, _encryption_context(account_id)))
    changed_protocols: list[str] = []
    was_disabled = bool((stored.imap or {}).get("disabled"))
    for protocol in ("imap", "smtp"):
        update: ServerSettingsUpdate | None = getattr(request, protocol)
        if update is None:
            continue
        current = getattr(stored, protocol)
        merged, password = _merge_server(current, passwords.get(protocol), update, protocol)
        if _login_of(merged) != _login_of(current) or password != passwords.get(protocol):
            changed_protocols.append(protocol)
        setattr(stored, protocol, merged)
        passwords[protocol] = password
    if request.verify:
        for protocol in changed_protocols:
            _verify(protocol, _mail_server(getattr(stored, protocol)), passwords[protocol])
    if "name" in request.model_fields_set:
        stored.name = request.name
    if request.email is not None:
        stored.email = request.email
    webhook_settings.apply_account_override(stored, request)  # -- webhooks: per-account override --
    if changed_protocols:
        stored.sealed_secrets = seal_secret(json.dumps(passwords), _encryption_context(account_id))
    if "imap" in changed_protocols or was_disabled != bool((stored.imap or {}).get("disabled")):
        stored.state = _state_after_edit(stored.imap)
    replaced = account_store.replace_account(stored)
    account_records.forget_account(account_id)  # -- mail API: cached reads --
    return replaced


def delete_account(account_id: str) -> None:
    """Remove the account and its credentials, and revoke tokens bound to it."""
    account_store.delete_account(account_id)
    token_store.delete_tokens_of_account(account_id)
    tokens.forget_verified_tokens()  # -- mail API: cached reads --
    account_records.forget_account(account_id)
    checkpoint_store.delete_account_checkpoints(account_id)  # -- watcher: checkpoints --


def load_credentials(account_id: str) -> AccountCredentials:
    """Decrypt an account's credentials for a mail session (kept in memory only)."""
    stored = account_store.get_account(account_id)
    passwords = json.loads(open_secret(stored.sealed_secrets, _encryption_context(account_id)))
    return AccountCredentials(
        account=account_id,
        imap=_mail_server(stored.imap) if stored.imap else None, imap_password=passwords.get("imap"),
        smtp=_mail_server(stored.smtp) if stored.smtp else None, smtp_password=passwords.get("smtp"))


def verify_settings(protocol: str, settings: ServerSettings) -> VerifyResult:
    """Try a login without saving anything; report the outcome instead of raising."""
    try:
        _verify(protocol, mail_server_from_settings(settings), settings.auth.password.get_secret_value())
    except MailServerError as exc:
        return VerifyResult(success=False, code=exc.code, error=exc.message, serverResponse=exc.server_response)
    return VerifyResult(success=True)
