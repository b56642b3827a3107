"""Account endpoints: parse -> services.accounts -> serialize."""

from __future__ import annotations

from typing import cast

from chalice import Blueprint, Response

from chalicelib.api.routing import Access, Call, api_route, json_response
from chalicelib.schemas.accounts import (
    AccountCreate,
    AccountCreated,
    AccountList,
    AccountListQuery,
    AccountOut,
    AccountState,
    AccountUpdate,
    AccountUpdated,
    VerifyRequest,
    VerifyResponse,
)
from chalicelib.schemas.common import DeletedResponse
from chalicelib.schemas.oauth2 import OAuth2TokenOut
from chalicelib.services import accounts

blueprint = Blueprint(__name__)
TAG = "Accounts"


@api_route(blueprint, "/v1/account", "POST", summary="Register an account (verifies the logins first)",
           tag=TAG, access=Access.API, body=AccountCreate, response=AccountCreated, errors=(400, 409, 422, 503))
def create_account(call: Call) -> AccountCreated:
    stored = accounts.create_account(call.body)
    return AccountCreated(account=stored.account, state=cast(AccountState, stored.state))


@api_route(blueprint, "/v1/accounts", "GET", summary="List accounts", tag=TAG, access=Access.ACCOUNT,
           query=AccountListQuery, response=AccountList)
def list_accounts(call: Call) -> AccountList:
    query: AccountListQuery = call.query
    only = call.principal.account if call.principal else None
    page, total, pages = accounts.list_accounts(query.page, query.pageSize, only=only, states=query.states(),
                                                query=query.query)
    return AccountList(accounts=[accounts.account_out(a) for a in page], total=total, page=query.page, pages=pages,
                       state=query.state or "*", query=query.query or False)


@api_route(blueprint, "/v1/account/{account}", "GET", summary="Get an account", tag=TAG,
           response=AccountOut, errors=(404,))
def get_account(call: Call) -> AccountOut:
    return accounts.account_out(accounts.get_account(call.params["account"]))


@api_route(blueprint, "/v1/account/{account}", "PUT", summary="Update an account (re-verifies changed logins)",
           tag=TAG, body=AccountUpdate, response=AccountUpdated, errors=(400, 404, 409, 422, 429, 503))
def update_account(call: Call) -> AccountUpdated:
    bound = call.principal is not None and call.principal.account is not None
    metered_token = call.principal.token_id if bound and call.principal is not None else None
    stored, webhook_secret = accounts.update_account(call.params["account"], call.body, metered_token=metered_token)
    return AccountUpdated(**dict(accounts.account_out(stored)), webhookSecret=webhook_secret)


@api_route(blueprint, "/v1/account/{account}", "DELETE",
           summary="Delete an account and everything it owns (a retry finishes an interrupted deletion)",
           tag=TAG, response=DeletedResponse, errors=(404,))
def delete_account(call: Call) -> DeletedResponse:
    from chalicelib.services import account_deletion  # one route: the deletion sweep (webhook log, checkpoints)
    account_deletion.delete_account(call.params["account"])
    return DeletedResponse(deleted=True)


@api_route(blueprint, "/v1/verifyAccount", "POST",
           summary="Check IMAP/SMTP settings without saving (unbound tokens, rate-limited per token)",
           tag=TAG, access=Access.API, body=VerifyRequest, response=VerifyResponse, errors=(422, 429))
def verify_account(call: Call) -> VerifyResponse:
    assert call.principal is not None  # Access.API: only a public route runs without a token
    return accounts.verify_account(call.body, call.principal.token_id)


@api_route(blueprint, "/v1/account/{account}/oauth-token", "GET",
           summary="The account's current OAuth2 access token (off unless enabled; unbound tokens only)",
           tag=TAG, access=Access.API, response=OAuth2TokenOut, errors=(403, 404, 409, 502, 503))
def get_oauth_token(call: Call) -> Response:
    from chalicelib.services import oauth2_token_api  # one route: token hand-out
    token = oauth2_token_api.current_token(call.params["account"])
    # A bearer token for the provider's own API: no shared cache may keep it.
    return json_response(token, headers={"Cache-Control": "no-store"})
