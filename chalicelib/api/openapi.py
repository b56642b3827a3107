"""The OpenAPI 3.1 document, generated from the same route specs and pydantic models
that validate requests (so documentation and behaviour cannot drift)."""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chalicelib.api.routing import ROUTES, Access, RouteSpec, object_query_fields
from chalicelib.schemas.common import ErrorBody, FieldWarning, OutputModel
from chalicelib.schemas.emailengine_fields import ignores_anything

API_VERSION = "1.0.0"
_ERROR_TEXT = {400: "The request contradicts this document", 401: "Missing or invalid token",
               403: "Token not allowed here", 404: "Not found", 409: "The current state stands in the way",
               413: "Body too large", 422: "Valid, but its values cannot be acted on (details say why)",
               500: "Internal error",
               # -- mail API --
               429: "Too many requests (connection slots busy, or a rate limit); see Retry-After",
               502: "The mail server failed or refused",
               503: "The mail server is busy", 504: "The mail server did not answer in time",
               507: "The mailbox is over its quota"}


def _query_object_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The object's schema as a query string can carry it: no null (an absent key is what null
    means in a body; a client serializing null would send the text "null")."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        options = [option for option in prop.pop("anyOf", []) if option.get("type") != "null"]
        if len(options) == 1:
            prop.update(options[0])
        elif options:
            prop["anyOf"] = options
        if prop.get("default", 0) is None:
            del prop["default"]
    return schema


def _query_parameters(spec: RouteSpec, schema: dict[str, Any]) -> list[dict[str, Any]]:
    parameters = []
    required = set(schema.get("required", []))
    objects = object_query_fields(spec.query) if spec.query is not None else {}
    for name, prop in schema.get("properties", {}).items():
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if name in objects:  # name[key]=value (routing.parse_query)
            parameter.update(style="deepObject", explode=True, schema=_query_object_schema(objects[name]))
        parameters.append(parameter)
    return parameters


def _output_model_names() -> set[str]:
    names, pending = set(), [OutputModel]
    while pending:
        model = pending.pop()
        names.add(model.__name__)
        pending.extend(model.__subclasses__())
    return names


def _is_nullable(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(_is_nullable(option) for option in schema.get("anyOf", ()))


def _absent_when_null(definition: dict[str, Any]) -> None:
    """Responses are serialized without null fields (routing.json_response): a nullable
    field of a response model is optional, whatever pydantic says about its default."""
    properties = definition.get("properties", {})
    required = [name for name in definition.get("required", []) if not _is_nullable(properties.get(name, {}))]
    if required:
        definition["required"] = required
    else:
        definition.pop("required", None)


def _empty_body_refused(model: type[BaseModel]) -> bool:
    """Whether ``{}`` fails validation (a required field, or a rule such as "email unless a login
    name is an address" that an empty body cannot meet)."""
    if any(field.is_required() for field in model.model_fields.values()):
        return True
    try:
        model.model_validate({})
    except PydanticValidationError:
        return True
    return False


def _with_warnings(spec: RouteSpec, schema: dict[str, Any]) -> dict[str, Any]:
    """The success answer of a route whose input accepts ignored EmailEngine fields also
    carries ``warnings`` (added by the router, see routing.with_warnings)."""
    if not any(model is not None and ignores_anything(model) for model in (spec.body, spec.query)):
        return schema
    warnings = {"type": "array", "items": {"$ref": "#/components/schemas/FieldWarning"},
                "description": "Request fields that were accepted and ignored (EmailEngine's, for features "
                               "this API does not have); absent when there are none"}
    return {"allOf": [schema, {"type": "object", "properties": {"warnings": warnings}}]}


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorBody, FieldWarning}
    for spec in ROUTES:
        models.update(m for m in (spec.body, spec.response) if m is not None)
        if spec.query is not None:
            models.update(object_query_fields(spec.query).values())
    keyed: list[tuple[type[BaseModel], JsonSchemaMode]] = [(model, "validation") for model in models]
    schema_map, definitions = models_json_schema(keyed, ref_template="#/components/schemas/{model}")
    output_models = _output_model_names()
    for name, definition in definitions.get("$defs", {}).items():
        if name in output_models:
            _absent_when_null(definition)
    paths: dict[str, dict[str, Any]] = {}
    for spec in ROUTES:
        operation: dict[str, Any] = {
            "summary": spec.summary,
            "tags": [spec.tag],
            "operationId": re.sub(r"\W+", "_", f"{spec.method.lower()}{spec.path}").strip("_"),
            "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                           for name in re.findall(r"{(\w+)}", spec.path)],
            "responses": {},
        }
        if spec.query is not None:
            operation["parameters"] += _query_parameters(spec, spec.query.model_json_schema())
        if spec.body is not None:
            # The router reads a missing body as {}: it is optional exactly when {} is valid.
            body_required = _empty_body_refused(spec.body)
            operation["requestBody"] = {"required": body_required, "content": {
                "application/json": {"schema": schema_map[(spec.body, "validation")]}}}
        ok: dict[str, Any] = {"description": "Success"}
        if spec.response is not None:
            schema = _with_warnings(spec, schema_map[(spec.response, "validation")])
            ok["content"] = {"application/json": {"schema": schema}}
        for success in (spec.status, *spec.also):
            operation["responses"][str(success)] = ok
        error_codes = set(spec.errors) | {500}
        if spec.body is not None or spec.query is not None:
            error_codes |= {400, 413} if spec.body is not None else {400}
        if spec.access is not Access.PUBLIC:
            error_codes |= {401, 403}
            operation["security"] = [{"bearerAuth": []}]
        for code in sorted(error_codes):
            operation["responses"][str(code)] = {
                "description": _ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "imapless", "version": API_VERSION,
                 "description": "REST API, change events and signed webhooks over IMAP/SMTP mailboxes."},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "Also accepted as ?access_token="}},
        },
    }
