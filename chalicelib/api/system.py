"""Unauthenticated endpoints: health, the OpenAPI document and its rendered docs page."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.openapi import openapi_document
from chalicelib.api.routing import Access, Call, api_route, json_response
from chalicelib.services import health

blueprint = Blueprint(__name__)
TAG = "System"
SWAGGER_UI_VERSION = "5.17.14"

DOCS_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imapless API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}/swagger-ui-bundle.js"></script>
<script>
  // The spec URL is relative so the page works behind API Gateway's stage prefix too.
  SwaggerUIBundle({{url: "openapi.json", dom_id: "#docs", persistAuthorization: true}});
</script></body></html>
"""


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
    return Response(body=DOCS_PAGE, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})
