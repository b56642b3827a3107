"""pytest plugin: AWS emulated by a moto server on loopback, and the API under test.

The environment is set when this plugin is imported, before any test imports
``chalicelib`` (pynamodb reads table names and endpoints when its models are built).
Tables and queues come from ``template.yaml`` through the same function the local
runner uses, so tests exercise the resources that ship. KMS is a real moto key: the
``kms`` key provider is what runs on AWS, so it is what the tests use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.tracked_connections import TracksConnections

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MOTO_PORT = _free_port()
MOTO_ENDPOINT = f"http://127.0.0.1:{MOTO_PORT}"
TEST_ENVIRONMENT = {
    "AWS_ENDPOINT_URL": MOTO_ENDPOINT,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "IMAPLESS_RESOURCE_PREFIX": "imapless-",
    "IMAPLESS_KEY_PROVIDER": "kms",
    "IMAPLESS_KMS_KEY_ID": "alias/imapless",
    # The test mail servers listen on loopback.
    "IMAPLESS_ALLOW_PRIVATE_NETWORKS": "true",
    "IMAPLESS_CONNECT_TIMEOUT_SECONDS": "3",
    "IMAPLESS_COMMAND_TIMEOUT_SECONDS": "10",
}
os.environ.update(TEST_ENVIRONMENT)


class MotoServer:
    """moto on ``MOTO_PORT`` in a thread of the test process, which a test can take away and bring back.

    moto keeps its state in process-global backends, so a server started again on the same
    port serves the same tables and queues. Stopping closes the listening socket *and* every
    open keep-alive connection, so clients see "connection refused" (an unreachable
    endpoint), not a server that still answers on connections it had already accepted.
    """

    def __init__(self) -> None:
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import ThreadedWSGIServer

        class _TrackingServer(TracksConnections, ThreadedWSGIServer):
            pass

        self._server = _TrackingServer("127.0.0.1", MOTO_PORT, DomainDispatcherApplication(create_backend_app),
                                       handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="moto-server")
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_open_connections()
        assert self._thread is not None
        self._thread.join()

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        """AWS is unreachable inside the block (state kept), and back after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()


MOTO = MotoServer()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    MOTO.start()
    try:
        yield MOTO_ENDPOINT
    finally:
        MOTO.stop()


@pytest.fixture(scope="session")
def aws_resources(moto_server: str) -> dict[str, Any]:
    import boto3

    from local.resources import create_resources

    created = create_resources(ROOT / "template.yaml", stack_name="imapless", endpoint_url=moto_server,
                               region=REGION)
    kms = boto3.client("kms", region_name=REGION, endpoint_url=moto_server)
    key_id = kms.create_key(Description="imapless test key")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/imapless", TargetKeyId=key_id)
    return {"resources": created, "kms_key_id": key_id}


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class ApiClient:
    """Calls the Chalice app in-process, as API Gateway would, with a default token."""

    def __init__(self, client: Any, token: str | None) -> None:
        self._client = client
        self.token = token

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = ...,  # type: ignore[assignment]
                headers: dict[str, str] | None = None, raw: bytes | str | None = None) -> ApiResponse:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        use_token = self.token if token is ... else token
        if use_token:
            all_headers.setdefault("Authorization", f"Bearer {use_token}")
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self._client.http, method.lower())(path, headers=all_headers, body=payload)
        return ApiResponse(response.status_code, dict(response.headers), response.body)

    def get(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> ApiResponse:
        return self.request("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> ApiResponse:
        return self.request("PUT", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture(scope="session")
def admin_token(aws_resources: dict[str, Any]) -> str:
    from chalicelib.services.tokens import register_token

    token = "test-admin-" + os.urandom(16).hex()
    register_token(token, description="test admin", scopes=["*"])
    return token


@pytest.fixture(scope="session")
def chalice_client(aws_resources: dict[str, Any]) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield client


@pytest.fixture
def api(chalice_client: Any, admin_token: str) -> ApiClient:
    return ApiClient(chalice_client, admin_token)
