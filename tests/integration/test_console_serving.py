"""The console's files as the app serves them: public, with the security headers on every answer."""

from __future__ import annotations

import pytest

from chalicelib.console import SECURITY_HEADERS


@pytest.mark.parametrize(("path", "content_type"), [
    ("/admin", "text/html; charset=utf-8"),
    ("/admin/main.js", "text/javascript; charset=utf-8"),
    ("/admin/console.css", "text/css; charset=utf-8"),
])
def test_console_files_are_public_and_carry_the_security_headers(chalice_client, path, content_type):
    # When a console file is asked for without a token
    response = chalice_client.http.get(path)
    # Then it is served with its type and every security header
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


@pytest.mark.parametrize("path", ["/admin/index.html", "/admin/nothing.js", "/admin/app.py", "/admin/..%2Fapp.py"])
def test_other_names_are_404_in_the_error_shape_with_the_headers(chalice_client, path):
    response = chalice_client.http.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert b'"code": "NotFound"' in response.body


def test_a_trailing_slash_is_sent_to_the_page_relatively_with_its_query(chalice_client):
    # The page's relative URLs only work from /admin: /admin/ redirects there, keeping the stage prefix and query
    response = chalice_client.http.get("/admin/?account=ada&state=new")
    assert response.status_code == 308
    assert response.headers["Location"] == "../admin?account=ada&state=new"


def test_the_console_is_not_part_of_the_api_document(chalice_client):
    document = chalice_client.http.get("/openapi.json")
    assert b"/admin" not in document.body
