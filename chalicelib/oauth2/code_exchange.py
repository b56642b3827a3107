"""The hosted authorization's two requests to the provider: the authorize URL the user's
browser is sent to, and the ``grant_type=authorization_code`` exchange (RFC 6749 4.1, RFC 7636).

Both are built with Authlib's client-side OAuth2 core (``prepare_grant_uri``,
``prepare_token_request``, ``create_s256_code_challenge``); the POST itself goes through the
webhook client's guarded pool like the refresh (:mod:`chalicelib.oauth2.token_endpoint`), because a
``generic`` application's token URL is the caller's choice and must pass the outbound address
policy. Authlib's own sessions would need requests or httpx, which are not deployed.

Invariants: the verifier and client secret travel only in the POST body, never in a URL; every
answer goes to :func:`chalicelib.oauth2.refresh_rules.classify_token_answer`.
"""

from __future__ import annotations

from chalicelib.oauth2.refresh_rules import TokenAnswer
from chalicelib.oauth2.token_endpoint import post_token_request


def authorize_url(authorization_url: str, *, client_id: str, redirect_uri: str, scopes: tuple[str, ...],
                  state: str, verifier: str, provider: str, login_hint: str | None = None) -> str:
    # Authlib is imported by the hosted authorization flow only, not by every API cold start.
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    extra: dict[str, str] = {"code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    if provider == "gmail":
        # Google issues a refresh token only for offline access, and only on a fresh consent.
        extra.update(access_type="offline", prompt="consent")
    if login_hint:
        extra["login_hint"] = login_hint
    # Microsoft's offline_access comes with the app's scopes (chalicelib.oauth2.providers).
    return str(prepare_grant_uri(authorization_url, client_id, "code", redirect_uri=redirect_uri,
                                 scope=" ".join(scopes), state=state, **extra))


def exchange_code(token_url: str, *, client_id: str, client_secret: str, code: str, redirect_uri: str,
                  verifier: str, timeout_seconds: float = 10.0) -> TokenAnswer:
    from authlib.oauth2.rfc6749.parameters import prepare_token_request  # see authorize_url

    body = prepare_token_request("authorization_code", code=code, redirect_uri=redirect_uri, client_id=client_id,
                                 client_secret=client_secret, code_verifier=verifier)
    return post_token_request(token_url, body, timeout_seconds)
