"""API token endpoints (admin only)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import Access, Call, api_route
from chalicelib.schemas.common import DeletedResponse
from chalicelib.schemas.tokens import TokenCreate, TokenCreated, TokenList, TokenOut
from chalicelib.services import accounts, tokens

blueprint = Blueprint(__name__)
TAG = "Access tokens"


@api_route(blueprint, "/v1/tokens", "POST", summary="Issue an API token (shown once)", tag=TAG,
           access=Access.ADMIN, body=TokenCreate, response=TokenCreated, errors=(404,))
def create_token(call: Call) -> TokenCreated:
    request: TokenCreate = call.body
    if request.account is not None:
        accounts.get_account(request.account)  # AccountNotFound for a typo, not a useless token
    record, token = tokens.create_token(request.description, list(request.scopes), request.account)
    return TokenCreated(id=record.id, token=token)


@api_route(blueprint, "/v1/tokens", "GET", summary="List API tokens (never the tokens themselves)", tag=TAG,
           access=Access.ADMIN, response=TokenList)
def list_tokens(call: Call) -> TokenList:
    return TokenList(tokens=[TokenOut(id=t.id, description=t.description, scopes=list(t.scopes),
                                      account=t.account, createdAt=t.created_at) for t in tokens.list_tokens()])


@api_route(blueprint, "/v1/tokens/{token_id}", "DELETE", summary="Revoke an API token", tag=TAG,
           access=Access.ADMIN, response=DeletedResponse, errors=(404, 409))
def delete_token(call: Call) -> DeletedResponse:
    tokens.revoke_token(call.params["token_id"])
    return DeletedResponse(deleted=True)

