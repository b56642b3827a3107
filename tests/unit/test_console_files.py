"""The console's static files keep the rules its security model rests on (docs/console.md).

Read as text, nothing served: the shell has no inline script or style (the policy would block
it), no file asks for anything outside this origin (a CDN, a font), no script writes HTML
from strings, and every file the shell or a module asks for is one the server serves.
"""

from __future__ import annotations

import re

import pytest

from chalicelib.console import (
    ASSET_NAME,
    CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
    STATIC_DIR,
    AssetNotFoundError,
    read_asset,
    read_page,
)

SCRIPTS = sorted(STATIC_DIR.glob("*.js"))
# Sinks that parse a string as HTML or code: data from the API must never reach one.
HTML_SINKS = re.compile(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval|Function)\s*[(=]")


def test_every_static_file_is_servable_and_the_shell_names_only_served_files():
    # Given the shell's references and every module's imports
    page, content_type = read_page()
    assert content_type.startswith("text/html")
    referenced = set(re.findall(r'(?:src|href)="admin/([^"]+)"', page))
    imported = {name for script in SCRIPTS for name in re.findall(r'from "\./([^"]+)"', script.read_text())}
    # Then each one is a file the asset route serves
    assert {"main.js", "console.css"} <= referenced
    for name in referenced | imported:
        assert ASSET_NAME.match(name), name
        assert read_asset(name)[0]
    # ... and no file sits in the directory that the route would refuse (it would be dead weight)
    for path in STATIC_DIR.iterdir():
        assert path.name == "index.html" or ASSET_NAME.match(path.name), path.name


def test_the_shell_has_no_inline_script_or_style():
    page, _ = read_page()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert "<style" not in page and " style=" not in page and re.search(r"\son[a-z]+=", page) is None


@pytest.mark.parametrize("path", sorted(STATIC_DIR.iterdir()), ids=lambda p: p.name)
def test_no_file_asks_for_anything_outside_this_origin(path):
    # An XML namespace name (createElementNS) is an identifier the browser never fetches.
    text = path.read_text().replace('"http://www.w3.org/2000/svg"', '""')
    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text) == []
    assert "@import" not in text and "url(" not in text


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_no_script_turns_a_string_into_html_or_code(path):
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("//"))
    assert HTML_SINKS.findall(code) == []


@pytest.mark.parametrize("name", ["index.html", "../app.py", "..%2Fapp.py", "settings.py", "Main.js", "main.js.map",
                                  ".hidden.js", "no-such-page.js", "a/b.js", ""])
def test_names_outside_the_console_files_are_not_found(name):
    with pytest.raises(AssetNotFoundError):
        read_asset(name)


def test_the_policy_allows_this_origin_only_and_no_framing():
    directives = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY"
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"
