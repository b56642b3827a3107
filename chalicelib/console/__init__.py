"""The operators' web console under ``/admin``: static files served by the API itself.

The console is a client of the public REST API and nothing else: every page calls the same
``/v1/...`` routes a script would, with the operator's API token as a bearer header. There
is no private endpoint, so whatever the console can do a script can do, and a token sees in
the console exactly what it sees through the API (an account-bound token: its account only).

Layout (no build step, no framework, no Node; every file is committed as served)::

    chalicelib/console/static/
      index.html     the shell: header, navigation, sign-in form, <main id="view">
      console.css    the one style sheet (responsive: a phone-width screen has no side scroll)
      main.js        sign-in / sign-out, registers every page with the router
      router.js      the tiny router: "#/<page>/<arg>/<arg>" -> page.render(view, args)
      api.js         api(method, path, body): fetch with the bearer token, errors as ApiError
      dom.js         h(tag, attrs, ...children): DOM built with textContent, never innerHTML
      webhook-parts.js  what Settings and an account's page share (secret shown once, test event)
      charts.js      SVG charts (stacked bars, a line, horizontal bars) built with createElementNS
      <page>.js      one ES module per page (accounts.js, account.js, activity.js, deliveries.js,
                     settings.js, tokens.js)

URLs are relative everywhere (the HTML asks for ``admin/main.js``; ``api.js`` resolves
``../v1/...`` against its own URL), so the console works behind API Gateway's stage prefix
(``/dev/admin``), under a custom domain's base path and under ``make run``.

How a page is added:

1. write ``static/<name>.js``, an ES module whose default export is
   ``{name: "<name>", title: "<Title>", nav: true, render(view, args)}``: ``render`` fills
   the ``view`` element (build DOM with ``dom.h``; API calls with ``api.api``); ``args`` are
   the hash's further segments (``#/account/ada`` -> ``["ada"]``); ``nav: false`` keeps the
   page out of the navigation bar, ``admin: true`` keeps it out for tokens that are not admin
   (the API would answer them 403); a third argument ``{isCurrent}`` tells a slow render
   whether the operator has moved on;
2. import it in ``static/main.js`` and add it to ``PAGES`` (the order is the navigation's);
3. nothing on the Python side: any ``static/`` file whose name matches :data:`ASSET_NAME`
   is served (``.js``, ``.css``), other names are 404.

Security invariants (docs/console.md explains the model):

- every answer carries :data:`SECURITY_HEADERS`: a Content-Security-Policy that allows
  scripts, styles and fetches from this origin only (no inline script or style, no CDN, no
  font: the console works in a VPC without internet), no framing of the console
  (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``), ``nosniff``, ``no-referrer``;
- the token lives in ``sessionStorage`` and travels only in the ``Authorization`` header,
  never in a URL (so never in a server's or a proxy's log);
- data from the API (account names, subjects, server error texts) is attacker-controlled
  and is only ever put in the page with ``textContent``; a message's HTML is shown only in
  an ``<iframe sandbox>`` without ``allow-scripts`` (an opaque origin that inherits this
  policy, so it loads nothing either).
"""

from __future__ import annotations

import re
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_FILE = "index.html"
# Flat names only: a path parameter never holds "/", and no name can climb out of STATIC_DIR.
ASSET_NAME = re.compile(r"^[a-z][a-z0-9-]{0,63}\.(js|css)$")
CONTENT_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
                 "html": "text/html; charset=utf-8"}

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    # A message's HTML is shown in a sandboxed srcdoc frame; blob: and data: for a frame built from a Blob.
    "frame-src 'self' blob: data:",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The files change with each deployment and are small: revalidate rather than serve a stale page.
    "Cache-Control": "no-cache",
}


class AssetNotFoundError(LookupError):
    """No console file of that name."""


def read_page() -> tuple[str, str]:
    """``(text, content type)`` of the shell, ``index.html``: served at ``/admin`` only (its URLs are relative)."""
    return (STATIC_DIR / INDEX_FILE).read_text(encoding="utf-8"), CONTENT_TYPES["html"]


def read_asset(name: str) -> tuple[str, str]:
    """``(text, content type)`` of the static file ``name``; :class:`AssetNotFoundError` otherwise."""
    if not ASSET_NAME.match(name):
        raise AssetNotFoundError(name)
    path = STATIC_DIR / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AssetNotFoundError(name) from None
    return text, CONTENT_TYPES[name.rsplit(".", 1)[1]]
