"""An OAuth2 authorization server of the tests' own, on loopback, built on Authlib's server core.

It stands in for Google's or Microsoft's token service so that XOAUTH2/OAUTHBEARER logins run
against the real Dovecot (and Postfix through Dovecot's SASL) of the test suite::

      test code ──issue(user)──────────────▶ ┐
      client    ──POST /token ─────────────▶ │ OAuth2Server (a thread, in memory)
                  (grant_type=refresh_token,  │   opaque bearer access tokens, short-lived
                   client_secret_basic/post)  │   refresh tokens, optionally rotated
      Dovecot   ──POST /introspect ────────▶ │   (RFC 7662, Basic auth as the resource server)
      (oauth2 passdb)                         │
      browser   ──GET /authorize ──────────▶ ┘   consents at once for ``login_hint`` (or
                  302 redirect_uri?code&state     :attr:`consenting_user`); PKCE S256 required,
                                                  the verifier checked at POST /token

Invariants:
- Tokens are opaque random strings: a token is valid exactly while :meth:`introspect` says
  ``active`` (not expired, not revoked), so a revocation takes effect at the next login
  (Dovecot caches nothing between logins in this configuration).
- ``access_token_seconds`` is the lifetime of every access token issued from now on (a knob, so a
  test can watch one expire); refresh tokens do not expire, they are revoked.
- ``rotate_refresh_tokens``: each refresh returns a new refresh token and the old one stays valid
  (what Microsoft does); otherwise the refresh token is kept (what Google does).
- Test controls: :meth:`issue` (tokens for a user without any flow), :meth:`revoke_user`,
  :meth:`expire_access_tokens`, :meth:`outage` (the token or introspection endpoint answers 503),
  :meth:`slow_token_answers`, :meth:`rotating_refresh_tokens`, :meth:`denying_consent` (the
  authorize endpoint answers ``error=access_denied``). Every request is counted in :attr:`requests`.

Failure answers are the standard ones Authlib produces: an unknown or revoked refresh token is
``400 {"error": "invalid_grant"}``, a wrong client secret ``401 {"error": "invalid_client"}``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from tests.support.daemons import HOST

SCOPE = "mail"
DEFAULT_ACCESS_TOKEN_SECONDS = 3600
RESOURCE_SERVER_ID = "mail-server"
# Authlib refuses http:// URLs unless told the transport is trusted: the server only listens on loopback.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


@dataclass(frozen=True)
class OAuth2Client:
    client_id: str
    client_secret: str = field(repr=False)
    grant_types: tuple[str, ...] = ("refresh_token", "authorization_code")


class _Client(ClientMixin):
    def __init__(self, client: OAuth2Client) -> None:
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_allowed_scope(self, scope: str | None) -> str:
        return SCOPE

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.client.grant_types

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return True  # any redirect URI: each test registers its own application

    def get_default_redirect_uri(self) -> str | None:
        return None

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"


@dataclass
class AuthorizationCode:
    """A code handed out by GET /authorize, redeemed once at POST /token."""

    code: str = field(repr=False)
    client_id: str
    username: str
    redirect_uri: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return SCOPE


@dataclass
class IssuedToken(TokenMixin):
    """One access token and the refresh token it came with (shared by later refreshes unless rotated)."""

    client_id: str
    username: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return SCOPE

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.username


class _Request(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: dict[str, str], form: dict[str, str],
                 args: dict[str, str] | None = None) -> None:
        super().__init__(method, uri, headers=headers)
        self._form = form
        self._args = args or {}
        self.payload = BasicOAuth2Payload({**self._args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        owner: OAuth2Server = self.server.owner
        token = owner.by_refresh_token(refresh_token)
        return token if token is not None and not token.revoked else None

    def authenticate_user(self, refresh_token: IssuedToken) -> str:
        return refresh_token.username

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        """Microsoft and Google both leave the old refresh token valid after a refresh."""


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        owner: OAuth2Server = self.server.owner
        owner.codes[code] = AuthorizationCode(
            code=code, client_id=request.client.get_client_id(), username=request.user,
            redirect_uri=request.payload.redirect_uri, code_challenge=request.payload.data.get("code_challenge"),
            code_challenge_method=request.payload.data.get("code_challenge_method"))

    def query_authorization_code(self, code: str, client: ClientMixin) -> AuthorizationCode | None:
        owner: OAuth2Server = self.server.owner
        found = owner.codes.get(code)
        return found if found is not None and found.client_id == client.get_client_id() else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        owner: OAuth2Server = self.server.owner
        owner.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.username


class _Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        owner: OAuth2Server = self.server.owner
        return owner.by_access_token(token_string)

    def check_permission(self, token: IssuedToken, client: ClientMixin, request: OAuth2Request) -> bool:
        return bool(client.get_client_id() == RESOURCE_SERVER_ID)

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        return {"active": True, "username": token.username, "client_id": token.client_id, "scope": SCOPE,
                "token_type": "Bearer", "exp": int(token.issued_at + token.expires_in),
                "iat": int(token.issued_at)}


class _Authlib(AuthorizationServer):
    def __init__(self, owner: OAuth2Server) -> None:
        super().__init__(scopes_supported=[SCOPE])
        self.owner = owner

    def query_client(self, client_id: str) -> _Client | None:
        client = self.owner.clients.get(client_id)
        return _Client(client) if client is not None else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        previous = request.refresh_token
        refresh = token.get("refresh_token") or (previous.refresh_token if previous is not None else None)
        self.owner.remember(IssuedToken(
            client_id=request.client.get_client_id(), username=request.user, access_token=token["access_token"],
            refresh_token=refresh, issued_at=time.time(), expires_in=int(token["expires_in"])))

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        return status, payload, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


class OAuth2Server:
    """The authorization server; ``with OAuth2Server() as server:`` runs it on a loopback port."""

    def __init__(self, *, access_token_seconds: int = DEFAULT_ACCESS_TOKEN_SECONDS,
                 rotate_refresh_tokens: bool = False) -> None:
        self.access_token_seconds = access_token_seconds
        self.client = OAuth2Client("imapless-test-" + secrets.token_hex(4), secrets.token_urlsafe(24))
        self.resource_server = OAuth2Client(RESOURCE_SERVER_ID, secrets.token_urlsafe(24), grant_types=())
        self.clients = {c.client_id: c for c in (self.client, self.resource_server)}
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._by_access: dict[str, IssuedToken] = {}
        self._by_refresh: dict[str, IssuedToken] = {}
        self._by_user: dict[str, list[IssuedToken]] = defaultdict(list)
        self._unavailable: dict[str, float] = {}
        self._token_delay_seconds = 0.0
        self._authlib = _Authlib(self)
        self._authlib.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda **_: secrets.token_urlsafe(32),
            refresh_token_generator=lambda **_: secrets.token_urlsafe(48),
            expires_generator=lambda client, grant_type: self.access_token_seconds))
        grant = type("RefreshTokenGrant", (_RefreshTokenGrant,), {"INCLUDE_NEW_REFRESH_TOKEN": rotate_refresh_tokens})
        self._refresh_grant = grant
        self._authlib.register_grant(grant)
        self._authlib.register_grant(_AuthorizationCodeGrant, [CodeChallenge(required=True)])
        self._authlib.register_endpoint(_Introspection)
        self.codes: dict[str, AuthorizationCode] = {}
        self.consenting_user: str | None = None
        self._deny_consent = False
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._http = ThreadingHTTPServer((HOST, 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="oauth2-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._http is not None, "not running"
        return int(self._http.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    # -- tokens ----------------------------------------------------------------------------

    def issue(self, username: str, *, expires_in: int | None = None, length: int = 43) -> IssuedToken:
        """Tokens for ``username`` as a finished authorization would give them (no flow, no request).
        ``length``: characters of the access token (Microsoft's are JWTs of 1.5-3 KB)."""
        lifetime = self.access_token_seconds if expires_in is None else expires_in
        access_token = (secrets.token_urlsafe(length) * 2)[:length]
        token = IssuedToken(client_id=self.client.client_id, username=username.lower(),
                            access_token=access_token, refresh_token=secrets.token_urlsafe(48),
                            issued_at=time.time(), expires_in=lifetime)
        self.remember(token)
        return token

    def remember(self, token: IssuedToken) -> None:
        with self._lock:
            self._by_access[token.access_token] = token
            if token.refresh_token is not None:
                self._by_refresh.setdefault(token.refresh_token, token)
            self._by_user[token.username].append(token)

    def by_access_token(self, access_token: str) -> IssuedToken | None:
        with self._lock:
            return self._by_access.get(access_token)

    def by_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        with self._lock:
            return self._by_refresh.get(refresh_token)

    def revoke_user(self, username: str) -> None:
        """Revoke every token of ``username`` (a user who withdrew consent or changed the password)."""
        with self._lock:
            for token in self._by_user.get(username.lower(), []):
                token.revoked = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (refresh tokens stay valid)."""
        with self._lock:
            for token in self._by_access.values():
                token.expires_in = min(token.expires_in, int(time.time() - token.issued_at) - 1)

    @contextmanager
    def slow_token_answers(self, seconds: float) -> Iterator[None]:
        """Within the block, the token endpoint waits ``seconds`` before answering (a slow
        provider: it widens the window in which two clients could both refresh)."""
        self._token_delay_seconds = seconds
        try:
            yield
        finally:
            self._token_delay_seconds = 0.0

    @contextmanager
    def rotating_refresh_tokens(self) -> Iterator[None]:
        """Within the block, each refresh returns a new refresh token (as Microsoft does)."""
        before = self._refresh_grant.INCLUDE_NEW_REFRESH_TOKEN
        self._refresh_grant.INCLUDE_NEW_REFRESH_TOKEN = True
        try:
            yield
        finally:
            self._refresh_grant.INCLUDE_NEW_REFRESH_TOKEN = before

    @contextmanager
    def denying_consent(self) -> Iterator[None]:
        """Within the block, the user refuses consent: GET /authorize redirects with ``error=access_denied``."""
        self._deny_consent = True
        try:
            yield
        finally:
            self._deny_consent = False

    def authorize(self, query: dict[str, str]) -> tuple[int, bytes, list]:
        """GET /authorize: the user consents at once (no page), as ``login_hint`` or :attr:`consenting_user`."""
        with self._lock:
            self.requests["/authorize"] += 1
        request = _Request("GET", self.base_url + "/authorize", {}, {}, query)
        grant = self._authlib.get_consent_grant(request)
        user = None if self._deny_consent else (query.get("login_hint") or self.consenting_user or "").lower()
        return self._authlib.create_authorization_response(request, grant_user=user or None, grant=grant)

    def is_active(self, access_token: str) -> bool:
        token = self.by_access_token(access_token)
        return token is not None and not token.is_expired() and not token.is_revoked()

    @contextmanager
    def outage(self, path: str = "/token", seconds: float = 3600.0) -> Iterator[None]:
        """``path`` (``/token`` or ``/introspect``) answers 503 for ``seconds``, or until the block ends."""
        self._unavailable[path] = time.monotonic() + seconds
        try:
            yield
        finally:
            self._unavailable.pop(path, None)

    # -- HTTP --------------------------------------------------------------------------------

    def respond(self, path: str, headers: dict[str, str], form: dict[str, str]) -> tuple[int, bytes, list]:
        with self._lock:
            self.requests[path] += 1
        if time.monotonic() < self._unavailable.get(path, 0.0):
            return 503, b'{"error": "temporarily_unavailable"}', [("Content-Type", "application/json")]
        request = _Request("POST", self.base_url + path, headers, form)
        if path == "/token":
            time.sleep(self._token_delay_seconds)
            return self._authlib.create_token_response(request)
        if path == "/introspect":
            return self._authlib.create_endpoint_response(_Introspection.ENDPOINT_NAME, request)
        return 404, b'{"error": "not_found"}', [("Content-Type", "application/json")]

    def resource_server_url(self) -> str:
        """The introspection URL with the resource server's credentials (HTTP Basic, as Dovecot sends them)."""
        return (f"http://{self.resource_server.client_id}:{self.resource_server.client_secret}"
                f"@{HOST}:{self.port}/introspect")


class _Handler(BaseHTTPRequestHandler):
    server_owner: OAuth2Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path != "/authorize":
            self._send(404, b'{"error": "not_found"}', [("Content-Type", "application/json")])
            return
        self._send(*self.server_owner.authorize(dict(parse_qsl(query, keep_blank_values=True))))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        form = dict(parse_qsl(body, keep_blank_values=True))
        headers = {name: value for name, value in self.headers.items()}
        self._send(*self.server_owner.respond(self.path.split("?")[0], headers, form))

    def _send(self, status: int, payload: bytes, response_headers: list) -> None:
        self.send_response(status)
        for name, value in response_headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tokens travel in these requests."""


def basic_auth(client: OAuth2Client) -> str:
    return "Basic " + base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
