"""The API process `make run` starts, over real HTTP: unknown paths and methods answered as the deployed API does."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.resources import load_template
from local.run import child_commands, read_config
from tests.support.mailservers import pick_free_ports

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("api-server") / "stderr.log"


@pytest.fixture(scope="module")
def api_url(aws_resources, admin_token, server_log) -> Iterator[tuple[str, int]]:
    # Given the API child of `make run`, started with the command the runner uses, against this session's moto
    (port,) = pick_free_ports(1)
    command = child_commands(read_config({"PORT": str(port), "IMAPLESS_MOTO_PORT": str(port + 1)}))["api"]
    with server_log.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, "the API process exited"
            try:
                send("127.0.0.1", port, "GET", "/health")
                break
            except OSError:
                assert time.monotonic() < deadline, "the API never answered"
                time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(10)


def send(host: str, port: int, method: str, path: str, headers: dict[str, str] | None = None,
         ) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/v1/no-such-route", "/v1/account/alice/nothing/here", "/", "/v1"])
def test_a_path_no_route_matches_is_404_and_repeats_no_credential(api_url, admin_token, server_log, path):
    # When a path matching no route is requested with the admin token, in the header and in the query
    status, headers, body = send(*api_url, "GET", f"{path}?access_token={admin_token}",
                                 {"Authorization": f"Bearer {admin_token}"})
    # Then the answer is the error shape's 404, and the token appears nowhere in it
    assert (status, headers["content-type"]) == (404, "application/json"), body
    assert json.loads(body) == {"error": "no route matches this path", "code": "RouteNotFound", "statusCode": 404}
    assert admin_token.encode() not in body and admin_token not in json.dumps(headers)
    # ... nor in the server's log
    time.sleep(0.1)
    assert path in server_log.read_text() and admin_token not in server_log.read_text()


@pytest.mark.parametrize(("response_type", "headers"), [
    ("MISSING_AUTHENTICATION_TOKEN", {}),
    ("INCOMPLETE_SIGNATURE", {"Authorization": "Bearer not-a-sigv4-signature"}),
])
def test_the_local_not_found_answer_is_the_deployed_gateway_response(api_url, response_type, headers):
    # The deployed stack answers with the template's gateway response: the local server sends exactly that
    declared = load_template(ROOT / "template.yaml")["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    not_found = declared[response_type]
    status, _, body = send(*api_url, "GET", "/nowhere", headers)
    assert status == int(not_found["StatusCode"])
    assert body.decode() == not_found["ResponseTemplates"]["application/json"]


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("TRACE", "/v1/accounts", {"GET"}),
    ("PATCH", "/v1/tokens", {"GET", "POST"}),
    ("OPTIONS", "/v1/tokens/{id}".replace("{id}", "abc"), {"DELETE"}),
    ("PURGE", "/health", {"GET"}),
])
def test_a_method_the_route_lacks_is_405_with_allow(api_url, admin_token, method, path, allowed):
    # When a route is requested with a method it does not have
    status, headers, body = send(*api_url, method, path, {"Authorization": f"Bearer {admin_token}"})
    # Then the answer is 405 in the error shape, and Allow lists the route's methods
    assert status == 405, body
    assert json.loads(body)["code"] == "MethodNotAllowed"
    assert {m.strip() for m in headers["allow"].split(",")} == allowed


def test_known_routes_still_answer(api_url, admin_token):
    status, _, body = send(*api_url, "GET", "/v1/accounts", {"Authorization": f"Bearer {admin_token}"})
    assert status == 200, body
