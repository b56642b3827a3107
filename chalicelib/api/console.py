"""``GET /admin`` and ``GET /admin/{asset}``: the operators' console (see :mod:`chalicelib.console`).

Not API routes: they are left out of the OpenAPI document and need no token (the files are
public; everything the console shows comes from the token-protected API). Every answer,
a 404 included, carries the console's security headers.
"""

from __future__ import annotations

from urllib.parse import urlencode

from chalice import Blueprint, Response

from chalicelib.api.routing import error_response
from chalicelib.console import SECURITY_HEADERS, AssetNotFoundError, read_asset, read_page
from chalicelib.errors import NotFoundError

blueprint = Blueprint(__name__)


def _served(text: str, content_type: str) -> Response:
    return Response(body=text, status_code=200, headers={"Content-Type": content_type, **SECURITY_HEADERS})


@blueprint.route("/admin", methods=["GET"])
def console_page() -> Response:
    request = blueprint.current_request
    if str(request.context.get("path", "")).endswith("/"):
        # "/admin/" reaches this route too (API Gateway and chalice local ignore the slash), but the
        # page's relative URLs would then resolve under /admin/admin/: send the browser to "/admin",
        # relatively, so the stage prefix stays (the query too: the OAuth2 form returns with one).
        query = urlencode(dict(request.query_params or {}))
        return Response(body="", status_code=308,
                        headers={"Location": "../admin" + (f"?{query}" if query else ""), **SECURITY_HEADERS})
    return _served(*read_page())


@blueprint.route("/admin/{asset}", methods=["GET"])
def console_asset(asset: str) -> Response:
    try:
        return _served(*read_asset(asset))
    except AssetNotFoundError:
        response = error_response(NotFoundError("no console file of that name"))
        response.headers.update(SECURITY_HEADERS)
        return response
