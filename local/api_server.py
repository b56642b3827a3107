"""The REST API under ``make run``: Chalice's local server, answering as the deployed API does.

``chalice local`` stands in for API Gateway, but differs from our deployed stack where the
gateway answers by itself:

- a path no route matches: chalice local answers 403 "Missing Authentication Token" and,
  when the request has an ``Authorization`` header, repeats that header (the caller's
  token) in the body, as API Gateway does by default. The deployed API answers with the
  gateway responses of ``template.yaml`` (``MISSING_AUTHENTICATION_TOKEN``, or
  ``INCOMPLETE_SIGNATURE`` when there is an ``Authorization`` header: 404 ``RouteNotFound``
  in the error shape, nothing of the request repeated); this server sends those very
  responses, read from the template;
- request log lines: http.server logs the request line, query string included, and a
  browser download sends its token as ``?access_token=``; only the path is logged here;
- a method the server's handler class has no ``do_<METHOD>`` for (TRACE, CONNECT, any
  token): ``http.server`` answers 501 with an HTML page. The deployed API routes every
  method of a known path to the app (the ANY method the finalize step adds), which answers
  405 ``MethodNotAllowed`` with ``Allow``; so does this server, OPTIONS included (chalice
  local would invent a CORS preflight answer the app never gave).

Everything else (event shape, path parameters, the app itself) is chalice local's.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from chalice.app import Chalice
from chalice.cli.factory import CLIFactory
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LocalChalice,
    LocalDevServer,
    LocalGateway,
    RouteMatcher,
)

from local.resources import load_template

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
STAGE = "local"
ROUTE_NOT_FOUND = "MISSING_AUTHENTICATION_TOKEN"
ROUTE_NOT_FOUND_WITH_AUTHORIZATION = "INCOMPLETE_SIGNATURE"


def gateway_response(template: dict[str, Any], response_type: str) -> dict[str, Any]:
    """The template's gateway response of ``response_type`` as a proxy response (status, headers, body)."""
    responses = template["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    declared = responses[response_type]
    headers = {name: value.strip("'")
               for name, value in declared.get("ResponseParameters", {}).get("Headers", {}).items()}
    body = declared["ResponseTemplates"]["application/json"]
    json.loads(body)  # a template that is not JSON must fail at start, not on the first unknown path
    return {"statusCode": int(declared["StatusCode"]), "headers": headers, "multiValueHeaders": {}, "body": body}


class DeployedLikeGateway(LocalGateway):
    """chalice local's gateway with the deployed stack's answers for unknown paths and methods."""

    def __init__(self, app_object: Chalice, config: Config, not_found: dict[str, dict[str, Any]]) -> None:
        super().__init__(app_object, config)
        self._routes = RouteMatcher(list(app_object.routes))
        self._not_found = not_found

    def handle_request(self, method: str, path: str, headers: dict[str, Any], body: bytes | None) -> dict[str, Any]:
        try:
            self._routes.match_route(path)
        except ValueError:
            with_authorization = any(name.lower() == "authorization" for name in headers)
            answer = self._not_found[ROUTE_NOT_FOUND_WITH_AUTHORIZATION if with_authorization else ROUTE_NOT_FOUND]
            return {**answer, "headers": dict(answer["headers"])}
        return super().handle_request(method, path, headers, body)

    def _has_user_defined_options_method(self, lambda_event: dict[str, Any]) -> bool:
        # True sends OPTIONS to the app, like the ANY method does on API Gateway.
        return True


class DeployedLikeRequestHandler(ChaliceRequestHandler):
    """Every request method reaches the gateway; none gets http.server's 501 page."""

    def __init__(self, request: Any, client_address: Any, server: HTTPServer, app_object: Chalice,
                 config: Config, not_found: dict[str, dict[str, Any]]) -> None:
        # Not ChaliceRequestHandler.__init__: it builds its own gateway, and the base class
        # handles the request inside __init__, so the gateway must be in place before.
        self.local_gateway = DeployedLikeGateway(app_object, config, not_found)
        BaseHTTPRequestHandler.__init__(self, request, client_address, server)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path without its query: ``?access_token=`` carries a token (browser downloads).
        path = self.path.split("?", 1)[0]
        self.log_message('"%s %s" %s %s', self.command, path, str(code), str(size))

    def parse_request(self) -> bool:
        # http.server answers 501 when the handler has no do_<METHOD>; the known methods are
        # class attributes, any other one is bound to the same generic handler here.
        parsed = bool(super().parse_request())
        if parsed and not hasattr(type(self), f"do_{self.command}"):
            setattr(self, f"do_{self.command}", self._generic_handle)
        return parsed


def create_server(host: str, port: int, project_dir: Path = PROJECT_ROOT) -> LocalDevServer:
    """The app of ``project_dir`` (stage ``local``) on ``host:port``, not yet serving."""
    factory = CLIFactory(project_dir=str(project_dir), environ=os.environ)
    config = factory.create_config_obj(chalice_stage_name=STAGE)
    app = config.chalice_app
    # What chalice.local.create_local_server does to the app (its local-mode context).
    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
    app.__class__ = CustomLocalChalice
    template = load_template(project_dir / "template.yaml")
    not_found = {response_type: gateway_response(template, response_type)
                 for response_type in (ROUTE_NOT_FOUND, ROUTE_NOT_FOUND_WITH_AUTHORIZATION)}

    # LocalDevServer adds app_object and config to the handler's arguments.
    handler = functools.partial(DeployedLikeRequestHandler, not_found=not_found)
    return LocalDevServer(app, config, host, port, handler_cls=handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the REST API locally, answering like the deployed API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    arguments = parser.parse_args(argv)
    # As chalice local does: the app's log lines on stdout, as they would be in Lambda.
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    create_server(arguments.host, arguments.port).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
