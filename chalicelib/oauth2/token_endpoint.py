"""Requests to an OAuth2 token endpoint: ``grant_type=refresh_token`` (RFC 6749 6), and the
POST that the code exchange (:mod:`chalicelib.oauth2.code_exchange`) shares.

A plain form POST through the webhook client's guarded pool (:func:`chalicelib.webhooks.client.
get_pool_manager`): the host is resolved and checked against the outbound address policy at
connect time, as for webhooks, because a ``generic`` application's token URL is the caller's
choice. The client authenticates with ``client_secret_post`` (form fields), which Google,
Microsoft and most providers accept.

Failure modes: no answer (refused, timeout, policy) is ``status None``; every answer, success
or not, goes to :func:`chalicelib.oauth2.refresh_rules.classify_token_answer`. Nothing here logs
or raises with a token or the client secret in it.
"""

from __future__ import annotations

from urllib.parse import urlencode

import urllib3

from chalicelib.oauth2.refresh_rules import TokenAnswer, classify_token_answer
from chalicelib.webhooks.client import get_pool_manager

MAX_ANSWER_BYTES = 64 * 1024


def refresh_access_token(token_url: str, *, client_id: str, client_secret: str, refresh_token: str,
                         scopes: tuple[str, ...] = (), timeout_seconds: float = 10.0) -> TokenAnswer:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id,
            "client_secret": client_secret}
    if scopes:
        form["scope"] = " ".join(scopes)
    return post_token_request(token_url, urlencode(form), timeout_seconds)


def post_token_request(token_url: str, form: str, timeout_seconds: float) -> TokenAnswer:
    """POST an url-encoded ``form`` to the token endpoint; its answer, classified (never raises)."""
    try:
        response = get_pool_manager().request(
            "POST", token_url, body=form.encode(), retries=False, redirect=False,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds), preload_content=False)
    except (urllib3.exceptions.HTTPError, OSError):
        return classify_token_answer(None, None)
    try:
        body = response.read(MAX_ANSWER_BYTES)
    except (urllib3.exceptions.HTTPError, OSError):
        return classify_token_answer(None, None)
    finally:
        response.release_conn()
    return classify_token_answer(response.status, body)
