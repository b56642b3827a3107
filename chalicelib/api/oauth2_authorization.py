"""Hosted authorization endpoints: the form (API token) and the provider's callback (a browser
redirect, so no token): parse -> services.oauth2_authorization -> JSON or a 302."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.routing import Access, Call, api_route
from chalicelib.errors import ApiError
from chalicelib.schemas.oauth2_authorization import AuthenticationForm, AuthenticationFormOut, OAuthCallbackQuery
from chalicelib.services import oauth2_authorization
from chalicelib.services.oauth2_authorization import AuthorizationRefusedError

blueprint = Blueprint(__name__)
TAG = "OAuth2 applications"


@api_route(blueprint, "/v1/authentication/form", "POST",
           summary="Start a hosted OAuth2 authorization: the URL of the provider's consent page", tag=TAG,
           access=Access.API, body=AuthenticationForm, response=AuthenticationFormOut, errors=(400, 422))
def authentication_form(call: Call) -> AuthenticationFormOut:
    return AuthenticationFormOut(url=oauth2_authorization.start_authorization(call.body))


@api_route(blueprint, "/oauth", "GET",
           summary="The provider's redirect after consent (register this URL, with the stage prefix, as the "
                   "application's redirect URI); answers 302 to the form's redirectUrl", tag=TAG,
           access=Access.PUBLIC, query=OAuthCallbackQuery, status=302, errors=(400, 422))
def oauth_callback(call: Call) -> Response:
    query: OAuthCallbackQuery = call.query
    try:
        location = oauth2_authorization.complete_authorization(query.state, code=query.code, error=query.error)
    except AuthorizationRefusedError as refused:
        # No redirect: the state did not come from this deployment, so no destination can be trusted.
        raise ApiError("this authorization link is not valid; start the authorization again",
                       code="InvalidOAuthState", status=422, details={"state": refused.reason}) from None
    return Response(body="", status_code=302, headers={"Location": location, "Cache-Control": "no-store"})
