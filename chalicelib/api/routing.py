"""How an HTTP route becomes a call into a service, in one place.

Each handler is registered with :func:`api_route`, which records a :class:`RouteSpec`
(the OpenAPI document is generated from these) and wraps the handler so that every
route does the same steps in the same order:

    authenticate -> size check -> parse JSON -> validate (pydantic) -> handler -> JSON
         401/403        413          400          400 / 422              ApiError -> its status

Validation answers 400 when the input contradicts the OpenAPI document generated from the
same models, and 422 when it breaks only a rule of a model's own validator, which the
document cannot carry (see chalicelib/errors.py).

EmailEngine's fields that a model accepts and ignores
(:mod:`chalicelib.schemas.emailengine_fields`) come back as the answer's ``warnings``: added
here to every JSON object answer of a request that had some, whatever the handler returned.

Parsing refuses bodies nested deeper than ``MAX_JSON_DEPTH`` before the parser recurses
(:mod:`chalicelib.api.json_depth`).

Invariant: a handler never sees raw input and never builds an error response itself;
AWS not answering (the store, queue or key service down or throttling, see
:mod:`chalicelib.aws_outages`) becomes a 503 ``ServiceUnavailable``; any other unexpected
exception becomes a 500 ``InternalError`` with the request id and no internals (the
traceback goes to the log).
"""

from __future__ import annotations

import enum
import functools
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from chalicelib.api.json_depth import JsonTooDeepError, check_json_depth
from chalicelib.api.query_brackets import nest_bracketed
from chalicelib.aws_outages import is_aws_outage
from chalicelib.errors import ApiError, InvalidJSONError, PayloadTooLargeError, ServiceUnavailableError, ValidationError
from chalicelib.observability import logger
from chalicelib.schemas.emailengine_fields import ignored_field_warnings
from chalicelib.services import tokens
from chalicelib.services.tokens import Principal
from chalicelib.settings import get_settings

JSON_CONTENT_TYPES = ["application/json", "text/plain"]


class Access(enum.Enum):
    PUBLIC = "public"      # no token
    ADMIN = "admin"        # '*' scope, not bound to an account
    API = "api"            # 'api' scope, not bound to an account (spans accounts)
    ACCOUNT = "account"    # 'api' scope; a bound token only for its own {account} (or filtered lists)


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    summary: str
    tag: str
    access: Access
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    also: tuple[int, ...] = ()  # other success statuses, with the same response body (202 queued)


ROUTES: list[RouteSpec] = []


@dataclass
class Call:
    """What a handler receives: validated input and the caller."""

    params: dict[str, str]
    principal: Principal | None
    body: Any = None
    query: Any = None
    request: Request | None = field(default=None, repr=False)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json", by_alias=True, exclude_none=True)
    return Response(body=json.dumps(payload, ensure_ascii=False), status_code=status,
                    headers={"Content-Type": "application/json", **(headers or {})})


def with_warnings(result: Any, warnings: list[dict[str, str]]) -> Any:
    """``result`` (a model, a dict or a JSON Response of an object) with ``warnings`` added."""
    if not warnings:
        return result
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(result, dict):
        return {**result, "warnings": warnings}
    if isinstance(result, Response) and isinstance(result.body, str) and result.body.startswith("{"):
        payload = json.loads(result.body)
        result.body = json.dumps({**payload, "warnings": warnings}, ensure_ascii=False)
    return result


def error_response(error: ApiError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    # Errors that tell the client when to come back (429 Retry-After) carry their own headers.
    extra_headers = getattr(error, "response_headers", None)
    if extra_headers is not None:
        headers.update(extra_headers())
    return json_response(error.to_body(), error.status, headers or None)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query = request.query_params
    return query.get("access_token") if query is not None else None


# Raised by the models' own validators (ValueError): rules the JSON Schema does not carry.
_RULES_BEYOND_THE_DOCUMENT = frozenset({"value_error", "assertion_error"})


def _invalid(message: str, exc: PydanticValidationError, prefix: str = "") -> ValidationError:
    """400 if the input contradicts the document; 422 if it only breaks a validator's own rule."""
    beyond = all(error["type"] in _RULES_BEYOND_THE_DOCUMENT for error in exc.errors(include_url=False))
    return ValidationError(message, details=_field_errors(exc, prefix), status=None if beyond else 400)


def _field_errors(exc: PydanticValidationError, prefix: str = "") -> dict[str, str]:
    details: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in error["loc"]) or "body"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        details[prefix + path] = message
    return details


def _json_number(text: str) -> int | float:
    """JSON has one number type: 993.0 is the integer 993 (as JSON Schema says), and models
    validate strictly, so an int field would refuse the float Python makes of it."""
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    raw = request.raw_body or b""
    if len(raw) > get_settings().max_body_bytes:
        raise PayloadTooLargeError(f"request body is larger than {get_settings().max_body_bytes} bytes",
                                   details={"maxBytes": get_settings().max_body_bytes})
    if not raw.strip():
        raw = b"{}"
    try:
        check_json_depth(raw)
        data = json.loads(raw, parse_float=_json_number)
    except (UnicodeDecodeError, json.JSONDecodeError, JsonTooDeepError) as exc:
        raise InvalidJSONError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object", details={"body": "expected an object"},
                              status=400)
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise _invalid("request body is invalid", exc) from None


@functools.cache  # read on every request of a route with a query model; a model's fields never change
def object_query_fields(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The query model's fields that are objects, written ``name[key]=value`` (OpenAPI deepObject);
    the dict is shared: read it, never change it."""
    found: dict[str, type[BaseModel]] = {}
    for name, info in model.model_fields.items():
        options = typing.get_args(info.annotation) or (info.annotation,)
        for option in options:
            if isinstance(option, type) and issubclass(option, BaseModel):
                found[info.alias or name] = option
    return found


def parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    params: dict[str, Any] = {k: v for k, v in (request.query_params or {}).items() if k != "access_token"}
    objects = object_query_fields(model)
    if objects:
        params = nest_bracketed(params, objects)
    try:
        return model.model_validate(params, strict=False)  # text to the documented types
    except PydanticValidationError as exc:
        raise _invalid("query parameters are invalid", exc, "query.") from None


def _authorize(request: Request, access: Access, params: dict[str, str]) -> Principal | None:
    if access is Access.PUBLIC:
        return None
    principal = tokens.authenticate(bearer_token(request))
    if access is Access.ADMIN:
        principal.require_admin()
    elif access is Access.API:
        principal.require_unbound()
    elif "account" in params:
        principal.require_account(params["account"])
    else:
        # Listing routes: any API token; bound tokens see only their own account.
        principal.require_api()
    return principal


def api_route(blueprint: Blueprint, path: str, method: str, *, summary: str, tag: str,
              access: Access = Access.ACCOUNT, body: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, response: type[BaseModel] | None = None,
              status: int = 200, errors: tuple[int, ...] = (), also: tuple[int, ...] = ()) -> Callable:
    """Register ``handler(call) -> model | dict | Response`` as ``method path``."""
    spec = RouteSpec(method=method, path=path, summary=summary, tag=tag, access=access, body=body,
                     query=query, response=response, status=status, errors=errors, also=also)
    ROUTES.append(spec)

    def decorator(handler: Callable[[Call], Any]) -> Callable:
        @functools.wraps(handler)
        def view(**params: str) -> Response:
            request = blueprint.current_request
            try:
                principal = _authorize(request, access, params)
                call = Call(params=params, principal=principal, request=request)
                if body is not None:
                    call.body = parse_body(request, body)
                if query is not None:
                    call.query = parse_query(request, query)
                result = with_warnings(handler(call), ignored_field_warnings(call.body, call.query))
                if isinstance(result, Response):
                    return result
                return json_response(result, status)
            except ApiError as exc:
                if exc.status >= 500:
                    logger.error("request failed", extra={"code": exc.code, "route": path})
                return error_response(exc)
            except Exception as exc:  # noqa: BLE001 - last line of defence: JSON 500, never a stack trace
                if is_aws_outage(exc):
                    logger.warning("AWS unavailable", extra={"route": path, "method": method,
                                                             "error": type(exc).__name__})
                    return error_response(ServiceUnavailableError(
                        "the service's storage, queue or key service did not answer; try again later"))
                logger.exception("unhandled error", extra={"route": path, "method": method})
                return error_response(ApiError("internal error; the request id is in the logs",
                                               code="InternalError", status=500))

        blueprint.route(path, methods=[method], content_types=JSON_CONTENT_TYPES)(view)
        return view

    return decorator
