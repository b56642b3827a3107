"""HTTP middleware: request-scoped log keys and one error shape for Chalice's own errors.

Chalice answers some requests before any view runs (415 for a content type a route does
not accept, 400 for a malformed request, 405 ...), in its own ``{"Code", "Message"}``
shape. Clients should parse one shape only, so those answers are rewritten to ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from chalice import Response
from chalice.app import Request

from chalicelib.observability import logger

_CHALICE_CODES = {
    "UnsupportedMediaType": "UnsupportedMediaType",
    "BadRequestError": "BadRequest",
    "MethodNotAllowedError": "MethodNotAllowed",
    "NotFoundError": "NotFound",
    "TooManyRequestsError": "TooManyRequests",
}


def normalize_chalice_errors(event: Request, get_response: Callable[[Request], Response]) -> Response:
    context = event.context or {}
    logger.append_keys(request_id=context.get("requestId"), route=context.get("resourcePath"))
    response = get_response(event)
    if response.status_code >= 400 and isinstance(response.body, dict) and set(response.body) == {"Code", "Message"}:
        code = _CHALICE_CODES.get(response.body["Code"], response.body["Code"])
        body = {"error": response.body["Message"], "code": code, "statusCode": response.status_code}
        response = Response(body=json.dumps(body), status_code=response.status_code,
                            headers={**(response.headers or {}), "Content-Type": "application/json"})
    logger.remove_keys(["request_id", "route"])
    return response
