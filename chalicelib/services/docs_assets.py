"""The interactive docs page (``/docs``) and the files it loads, all served by the API itself.

The page needs nothing from the internet (a deployment in a VPC without a NAT, a laptop
offline): Swagger UI comes from the pinned ``swagger-ui-bundle-v2`` package (the
``swagger-ui-dist`` files of the same version, Apache-2.0), our start-up script from
``chalicelib/static``::

    GET /docs                          the page (HTML, no inline script)
    GET /docs/assets/swagger-ui.css    } Swagger UI SWAGGER_UI_VERSION
    GET /docs/assets/swagger-ui-bundle.js
    GET /docs/assets/favicon-32x32.png   (the one binary file)
    GET /docs/assets/docs-init.js      starts Swagger UI on openapi.json

Invariants:
- Every URL on the page is relative (``docs/assets/...``, ``openapi.json``), so the page
  works under API Gateway's stage prefix (``/<stage>/docs``) and under ``make run`` alike.
- Asset URLs carry ``?v=<version>`` (Swagger UI's version; a digest of our script), so they
  can be cached for a year: a new version is a new URL.
- Only the files in :data:`ASSETS` are served (a name is a key, never a path).
- Files are read on first request, not at import: the API's cold start does not pay for
  1.5 MB of JavaScript it may never serve.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from chalicelib.errors import NotFoundError

SWAGGER_UI_VERSION = "5.31.0"  # of swagger-ui-bundle-v2 in requirements.txt
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CACHE_FOR_A_YEAR = "public, max-age=31536000, immutable"
# Swagger UI sets style attributes and uses data: images in its CSS; it loads nothing else.
DOCS_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Asset:
    name: str
    content_type: str
    in_swagger_ui: bool  # else one of ours, in STATIC_DIR

    @property
    def binary(self) -> bool:
        return not self.content_type.startswith("text/")


ASSETS = {asset.name: asset for asset in (
    Asset("swagger-ui.css", "text/css; charset=utf-8", in_swagger_ui=True),
    Asset("swagger-ui-bundle.js", "text/javascript; charset=utf-8", in_swagger_ui=True),
    Asset("favicon-32x32.png", "image/png", in_swagger_ui=True),
    Asset("docs-init.js", "text/javascript; charset=utf-8", in_swagger_ui=False),
)}


def _swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path  # here, not at import: only the docs need it

    path = Path(str(swagger_ui_path))
    if not path.name.endswith(SWAGGER_UI_VERSION):  # the pin and this constant moved apart
        raise RuntimeError(f"swagger-ui-bundle carries {path.name}, expected {SWAGGER_UI_VERSION}")
    return path


@functools.lru_cache(maxsize=len(ASSETS))
def read_asset(name: str) -> tuple[Asset, bytes]:
    """The asset called ``name`` and its bytes; a 404 for any other name."""
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFoundError(f"no docs asset {name!r}", details={"name": name})
    folder = _swagger_ui_dir() if asset.in_swagger_ui else STATIC_DIR
    return asset, (folder / asset.name).read_bytes()


def _url(name: str) -> str:
    asset = ASSETS[name]
    version = SWAGGER_UI_VERSION if asset.in_swagger_ui else hashlib.sha256(read_asset(name)[1]).hexdigest()[:12]
    return f"docs/assets/{name}?v={version}"


@functools.lru_cache(maxsize=1)
def docs_page() -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imapless API</title>
<link rel="icon" type="image/png" href="{_url("favicon-32x32.png")}">
<link rel="stylesheet" href="{_url("swagger-ui.css")}"></head>
<body><div id="docs"></div>
<script src="{_url("swagger-ui-bundle.js")}"></script>
<script src="{_url("docs-init.js")}"></script>
</body></html>
"""
