"""Unauthenticated endpoints: health, the OpenAPI document and its rendered docs page."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.openapi import openapi_document
from chalicelib.api.routing import Access, Call, api_route, json_response
from chalicelib.services import docs_assets, health

blueprint = Blueprint(__name__)
TAG = "System"


@api_route(blueprint, "/health", "GET", summary="Store and queue reachability", tag=TAG, access=Access.PUBLIC)
def get_health(call: Call) -> Response:
    checks = health.run_checks()
    healthy = all(result["status"] == "ok" for result in checks.values())
    return json_response({"status": "ok" if healthy else "error", "checks": checks}, 200 if healthy else 503)


@api_route(blueprint, "/openapi.json", "GET", summary="This API's OpenAPI 3.1 document", tag=TAG,
           access=Access.PUBLIC)
def get_openapi(call: Call) -> Response:
    return json_response(openapi_document())


@api_route(blueprint, "/docs", "GET", summary="Interactive API documentation", tag=TAG, access=Access.PUBLIC)
def get_docs(call: Call) -> Response:
    return Response(body=docs_assets.docs_page(), status_code=200, headers={
        "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": docs_assets.DOCS_CSP,
        "Cache-Control": "no-cache"})


@api_route(blueprint, "/docs/assets/{name}", "GET", summary="A file of the documentation page (Swagger UI)",
           tag=TAG, access=Access.PUBLIC, errors=(404,))
def get_docs_asset(call: Call) -> Response:
    asset, content = docs_assets.read_asset(call.params["name"])
    # Text goes out as text; the PNG as bytes, which Chalice base64-encodes for the Lambda
    # proxy (image/png is among its binary types, so API Gateway turns it back into bytes).
    return Response(body=content if asset.binary else content.decode("utf-8"), status_code=200,
                    headers={"Content-Type": asset.content_type, "Cache-Control": docs_assets.CACHE_FOR_A_YEAR,
                             "X-Content-Type-Options": "nosniff"})
