"""Account endpoints: parse -> services.accounts -> serialize."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import Access, Call, api_route
from chalicelib.schemas.accounts import (
    AccountCreate,
    AccountCreated,
    AccountList,
    AccountListQuery,
    AccountOut,
    AccountUpdate,
    ImapSettingsOut,
    ServerAuthOut,
    ServerSettingsOut,
    TlsSettings,
    VerifyRequest,
    VerifyResponse,
)
from chalicelib.schemas.common import DeletedResponse
from chalicelib.services import accounts
from chalicelib.store.accounts import StoredAccount

blueprint = Blueprint(__name__)
TAG = "Accounts"


def _server_fields(config: dict) -> dict:
    return {"host": config["host"], "port": config["port"], "secure": config["secure"],
            "auth": ServerAuthOut(user=config["user"]), "tls": TlsSettings.model_validate(config.get("tls") or {})}


def _server_out(config: dict | None) -> ServerSettingsOut | None:
    return ServerSettingsOut(**_server_fields(config)) if config else None


def _imap_out(config: dict | None) -> ImapSettingsOut | None:
    return ImapSettingsOut(**_server_fields(config), disabled=bool(config.get("disabled"))) if config else None


def account_out(stored: StoredAccount) -> AccountOut:
    return AccountOut(account=stored.account, name=stored.name, email=stored.email, state=stored.state,
                      imap=_imap_out(stored.imap), smtp=_server_out(stored.smtp),
                      createdAt=stored.created_at, updatedAt=stored.updated_at,
                      webhooks=stored.webhooks, webhookEvents=stored.webhook_events)


@api_route(blueprint, "/v1/account", "POST", summary="Register an account (verifies the logins first)",
           tag=TAG, access=Access.API, body=AccountCreate, response=AccountCreated, errors=(400, 409, 422))
def create_account(call: Call) -> AccountCreated:
    stored = accounts.create_account(call.body)
    return AccountCreated(account=stored.account, state=stored.state)


@api_route(blueprint, "/v1/accounts", "GET", summary="List accounts", tag=TAG, access=Access.ACCOUNT,
           query=AccountListQuery, response=AccountList)
def list_accounts(call: Call) -> AccountList:
    only = call.principal.account if call.principal else None
    page, total, pages = accounts.list_accounts(call.query.page, call.query.pageSize, only=only)
    return AccountList(accounts=[account_out(a) for a in page], total=total, page=call.query.page, pages=pages)


@api_route(blueprint, "/v1/account/{account}", "GET", summary="Get an account", tag=TAG,
           response=AccountOut, errors=(404,))
def get_account(call: Call) -> AccountOut:
    return account_out(accounts.get_account(call.params["account"]))


@api_route(blueprint, "/v1/account/{account}", "PUT", summary="Update an account (re-verifies changed logins)",
           tag=TAG, body=AccountUpdate, response=AccountOut, errors=(400, 404, 409, 422))
def update_account(call: Call) -> AccountOut:
    return account_out(accounts.update_account(call.params["account"], call.body))


@api_route(blueprint, "/v1/account/{account}", "DELETE", summary="Delete an account and its credentials",
           tag=TAG, response=DeletedResponse, errors=(404,))
def delete_account(call: Call) -> DeletedResponse:
    accounts.delete_account(call.params["account"])
    return DeletedResponse(deleted=True)


@api_route(blueprint, "/v1/verifyAccount", "POST", summary="Check IMAP/SMTP settings without saving",
           tag=TAG, access=Access.API, body=VerifyRequest, response=VerifyResponse)
def verify_account(call: Call) -> VerifyResponse:
    request: VerifyRequest = call.body
    return VerifyResponse(
        imap=accounts.verify_settings("imap", request.imap) if request.imap else None,
        smtp=accounts.verify_settings("smtp", request.smtp) if request.smtp else None)
