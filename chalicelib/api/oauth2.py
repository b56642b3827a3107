"""OAuth2 application endpoints: parse -> services.oauth2_apps -> serialize."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.routing import Access, Call, api_route
from chalicelib.schemas.common import DeletedResponse
from chalicelib.schemas.oauth2 import (
    OAuth2AppCreate,
    OAuth2AppCreated,
    OAuth2AppList,
    OAuth2AppListQuery,
    OAuth2AppOut,
    OAuth2AppUpdate,
)
from chalicelib.services import oauth2_app_health, oauth2_apps

blueprint = Blueprint(__name__)
TAG = "OAuth2 applications"


@api_route(blueprint, "/v1/oauth2", "POST", summary="Register an OAuth2 application (the client secret is sealed)",
           tag=TAG, access=Access.API, body=OAuth2AppCreate, response=OAuth2AppCreated, errors=(400, 422))
def create_app(call: Call) -> OAuth2AppCreated:
    return OAuth2AppCreated(id=oauth2_apps.create_app(call.body).id)


@api_route(blueprint, "/v1/oauth2", "GET", summary="List OAuth2 applications", tag=TAG, access=Access.API,
           query=OAuth2AppListQuery, response=OAuth2AppList)
def list_apps(call: Call) -> OAuth2AppList:
    page, total, pages = oauth2_apps.list_apps(call.query.page, call.query.pageSize)
    return OAuth2AppList(apps=[oauth2_apps.app_out(app) for app in page], total=total, page=call.query.page,
                         pages=pages)


@api_route(blueprint, "/v1/oauth2/{app}", "GET", summary="Get an OAuth2 application (never its secret)", tag=TAG,
           access=Access.API, response=OAuth2AppOut, errors=(404,))
def get_app(call: Call) -> OAuth2AppOut:
    return oauth2_apps.app_out(oauth2_apps.get_app(call.params["app"]))


@api_route(blueprint, "/v1/oauth2/{app}", "PUT",
           summary="Update an OAuth2 application (a new token endpoint or client id needs the client secret again)",
           tag=TAG, access=Access.API, body=OAuth2AppUpdate, response=OAuth2AppCreated, errors=(400, 404, 422))
def update_app(call: Call) -> OAuth2AppCreated:
    return OAuth2AppCreated(id=oauth2_app_health.update_app(call.params["app"], call.body).id)


@api_route(blueprint, "/v1/oauth2/{app}", "DELETE",
           summary="Delete an OAuth2 application (409 while accounts log in through it)", tag=TAG,
           access=Access.API, response=DeletedResponse, errors=(404, 409))
def delete_app(call: Call) -> DeletedResponse:
    oauth2_apps.delete_app(call.params["app"])
    return DeletedResponse(deleted=True)
