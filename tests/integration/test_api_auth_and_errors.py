"""Token authentication, account-bound tokens and the one error shape, through the API."""

from __future__ import annotations

import json

import pytest


def assert_error(response, status: int, code: str) -> dict:
    assert response.status == status, response.body
    body = response.json
    assert body["code"] == code
    assert body["statusCode"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.body.decode()
    return body


def new_account(api, account_id: str) -> None:
    response = api.post("/v1/account", {
        "account": account_id, "email": f"{account_id}@example.com", "verify": False,
        "imap": {"host": "imap.example.com", "port": 993, "secure": True,
                 "auth": {"user": account_id, "pass": "pw-" + account_id}}})
    assert response.status == 200, response.body


class TestTokens:
    def test_missing_token_is_401_json(self, api):
        body = assert_error(api.get("/v1/accounts", token=None), 401, "Unauthorized")
        assert "Bearer" in body["error"]

    def test_invalid_token_is_401(self, api):
        assert_error(api.get("/v1/accounts", token="0" * 64), 401, "Unauthorized")

    def test_token_in_query_string_works_for_downloads(self, api):
        response = api.get(f"/v1/accounts?access_token={api.token}", token=None)
        assert response.status == 200

    def test_created_token_works_once_shown_and_is_never_listed(self, api):
        created = api.post("/v1/tokens", {"description": "ci"})
        assert created.status == 200
        token, token_id = created.json["token"], created.json["id"]
        assert len(token) == 64
        assert api.get("/v1/accounts", token=token).status == 200
        listing = api.get("/v1/tokens")
        assert token_id in [t["id"] for t in listing.json["tokens"]]
        assert token not in listing.body.decode()

    def test_revoked_token_stops_working(self, api):
        created = api.post("/v1/tokens", {"description": "short-lived"}).json
        assert api.delete(f"/v1/tokens/{created['id']}").status == 200
        assert_error(api.get("/v1/accounts", token=created["token"]), 401, "Unauthorized")
        assert_error(api.delete(f"/v1/tokens/{created['id']}"), 404, "TokenNotFound")

    def test_account_bound_token_only_touches_its_account(self, api):
        new_account(api, "bound-own")
        new_account(api, "bound-other")
        token = api.post("/v1/tokens", {"description": "one account", "scopes": ["api"],
                                        "account": "bound-own"}).json["token"]
        assert api.get("/v1/account/bound-own", token=token).status == 200
        assert_error(api.get("/v1/account/bound-other", token=token), 403, "Forbidden")
        assert_error(api.delete("/v1/account/bound-other", token=token), 403, "Forbidden")
        assert_error(api.get("/v1/tokens", token=token), 403, "Forbidden")
        listed = api.get("/v1/accounts", token=token).json
        assert [a["account"] for a in listed["accounts"]] == ["bound-own"]

    def test_api_scope_cannot_manage_tokens(self, api):
        token = api.post("/v1/tokens", {"description": "api only", "scopes": ["api"]}).json["token"]
        assert api.get("/v1/accounts", token=token).status == 200
        assert_error(api.post("/v1/tokens", {"description": "x"}, token=token), 403, "Forbidden")

    def test_token_for_unknown_account_is_404(self, api):
        assert_error(api.post("/v1/tokens", {"description": "x", "account": "nobody-here"}), 404,
                     "AccountNotFound")

    def test_deleting_an_account_revokes_its_tokens(self, api):
        new_account(api, "bound-gone")
        token = api.post("/v1/tokens", {"description": "x", "scopes": ["api"], "account": "bound-gone"}).json
        assert api.delete("/v1/account/bound-gone").status == 200
        assert_error(api.get("/v1/account/bound-gone", token=token["token"]), 401, "Unauthorized")


class TestErrorShapes:
    def test_invalid_json_is_400(self, api):
        assert_error(api.post("/v1/account", raw="{not json"), 400, "InvalidJSON")

    def test_non_object_body_is_400(self, api):
        assert_error(api.post("/v1/account", raw="[1, 2]"), 400, "ValidationError")

    def test_unknown_field_is_named(self, api):
        body = assert_error(api.post("/v1/tokens", {"description": "x", "colour": "red"}), 400, "ValidationError")
        assert body["details"] == {"colour": "unknown field"}

    def test_missing_and_mistyped_fields_are_named(self, api):
        body = assert_error(api.post("/v1/account", {
            "email": "a@example.com", "imap": {"host": "h", "port": "not-a-port", "auth": {"user": "u"}}}),
            400, "ValidationError")
        assert set(body["details"]) == {"imap.port", "imap.auth.pass"}

    def test_port_out_of_range_is_named(self, api):
        body = assert_error(api.post("/v1/account", {
            "email": "a@example.com", "imap": {"host": "h", "port": 70000, "auth": {"user": "u", "pass": "p"}}}),
            400, "ValidationError")
        assert list(body["details"]) == ["imap.port"]

    def test_password_never_echoed_in_validation_errors(self, api):
        response = api.post("/v1/account", {
            "email": "not an address", "imap": {"host": "h", "port": 1, "auth": {"user": "u", "pass": "s3cr3t-pw"}}})
        assert_error(response, 422, "ValidationError")  # the address syntax is the validator's rule
        assert "s3cr3t-pw" not in response.body.decode()
        assert "email" in response.json["details"]

    @pytest.mark.parametrize("address", ["user@example.com", "user@mail.example.test", "x@foo.invalid",
                                         "name+tag@example.org"])
    def test_reserved_test_domains_are_valid_addresses(self, api, address):
        account_id = "addr-" + address.split("@")[1].replace(".", "-")
        response = api.post("/v1/account", {
            "account": account_id, "email": address, "verify": False,
            "imap": {"host": "imap.example.com", "port": 993, "secure": True, "auth": {"user": "u", "pass": "p"}}})
        assert response.status == 200, response.body

    @pytest.mark.parametrize("account_id", ["", "has space", "a/b", "x" * 65, "ünï"])
    def test_invalid_account_ids_are_rejected(self, api, account_id):
        body = assert_error(api.post("/v1/account", {
            "account": account_id, "email": "a@example.com", "verify": False,
            "imap": {"host": "h", "port": 1, "auth": {"user": "u", "pass": "p"}}}), 400, "ValidationError")
        assert "account" in body["details"]

    def test_oversize_body_is_413(self, api):
        huge = json.dumps({"description": "x" * (6 * 1024 * 1024)})
        assert_error(api.post("/v1/tokens", raw=huge), 413, "PayloadTooLarge")

    def test_unknown_account_is_404(self, api):
        body = assert_error(api.get("/v1/account/no-such-account"), 404, "AccountNotFound")
        assert body["details"] == {"account": "no-such-account"}

    def test_bad_query_parameter_is_named(self, api):
        body = assert_error(api.get("/v1/accounts?pageSize=0"), 400, "ValidationError")
        assert list(body["details"]) == ["query.pageSize"]

    def test_unsupported_content_type_uses_the_same_shape(self, api):
        response = api.post("/v1/tokens", raw="description=x", headers={"Content-Type": "application/xml"})
        assert_error(response, 415, "UnsupportedMediaType")


class TestSystemEndpoints:
    def test_health_reports_store_and_queue(self, api):
        response = api.get("/health", token=None)
        assert response.status == 200
        assert response.json == {"status": "ok", "checks": {"store": {"status": "ok"}, "queue": {"status": "ok"}}}

    def test_openapi_document_describes_the_routes(self, api):
        document = api.get("/openapi.json", token=None).json
        assert document["openapi"].startswith("3.1")
        create = document["paths"]["/v1/account"]["post"]
        schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
        # imap or oauth2: which one is a rule across fields (a 422), not a required property
        assert {"imap", "oauth2", "email"} <= set(schema["properties"])
        # email is required unless a login name is an address: a rule the document states (anyOf)
        assert "email" not in schema.get("required", [])
        assert schema["anyOf"][0]["required"] == ["email"]
        assert "401" in create["responses"] and "400" in create["responses"]
        # The OAuth2 callback is a browser redirect: no token, and documented as a 302
        callback = document["paths"]["/oauth"]["get"]
        assert "302" in callback["responses"] and not callback.get("security")

    def test_docs_page_renders_the_document(self, api):
        response = api.get("/docs", token=None)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert b"docs/assets/docs-init.js" in response.body  # which loads openapi.json


class TestHostileBodies:
    @pytest.mark.parametrize("opening", ["[", '{"a":'])
    def test_deeply_nested_json_is_400_invalid_json(self, api, opening):
        # Given a body nested 100,000 levels deep (deeper than any parser's recursion limit)
        raw = opening * 100_000
        # When it is posted
        response = api.post("/v1/tokens", raw=raw)
        # Then it is refused as invalid JSON, naming the limit, not a 500
        body = assert_error(response, 400, "InvalidJSON")
        assert "64" in body["error"]

    def test_nesting_up_to_the_limit_reaches_validation(self, api):
        # Given a well-formed body whose nesting stays within the limit
        raw = '{"description": "x", "scopes": ' + "[" * 60 + "]" * 60 + "}"
        # Then it is parsed and judged by the schema, not by the depth guard
        assert_error(api.post("/v1/tokens", raw=raw), 400, "ValidationError")


class TestPagingBounds:
    @pytest.mark.parametrize("path", ["/v1/outbox", "/v1/accounts"])
    @pytest.mark.parametrize("parameter", ["page=986412697", "page=-1", "pageSize=0", "pageSize=1001"])
    def test_paging_beyond_its_documented_bounds_is_400_naming_the_parameter(self, api, path, parameter):
        # When a list is asked for a page outside the documented bounds
        body = assert_error(api.get(f"{path}?{parameter}"), 400, "ValidationError")
        # Then the answer names the parameter
        assert list(body["details"]) == ["query." + parameter.split("=")[0]]

    def test_the_last_allowed_page_is_an_empty_page(self, api):
        from chalicelib.schemas.common import MAX_PAGE

        response = api.get(f"/v1/outbox?page={MAX_PAGE}")
        assert response.status == 200, response.body
        assert response.json["messages"] == []


def unbound_admin_ids(api) -> list[str]:
    listing = api.get("/v1/tokens").json["tokens"]
    return [t["id"] for t in listing if "*" in t["scopes"] and t.get("account") is None]


class TestLastAdminToken:
    def test_the_last_unbound_admin_token_cannot_be_revoked(self, api):
        # Given only the caller's admin token remains (every other unbound admin token revoked)
        own_id = api.get("/v1/tokens").json["tokens"]
        caller = next(t["id"] for t in own_id if t["description"] == "test admin")
        spare = api.post("/v1/tokens", {"description": "spare admin"}).json
        for token_id in unbound_admin_ids(api):
            if token_id not in (caller, spare["id"]):
                assert api.delete(f"/v1/tokens/{token_id}").status == 200
        # When the spare is revoked, and then the caller's own token
        assert api.delete(f"/v1/tokens/{spare['id']}").status == 200
        body = assert_error(api.delete(f"/v1/tokens/{caller}"), 409, "LastAdminToken")
        # Then the last one is refused, names itself, and still works
        assert body["details"] == {"id": caller}
        assert api.get("/v1/tokens").status == 200

    def test_an_admin_token_can_be_revoked_while_another_remains(self, api):
        created = api.post("/v1/tokens", {"description": "second admin"}).json
        assert api.delete(f"/v1/tokens/{created['id']}").status == 200
        assert_error(api.get("/v1/tokens", token=created["token"]), 401, "Unauthorized")

    def test_concurrent_revokes_of_the_last_two_admin_tokens_leave_one(self, api, admin_token):
        from concurrent.futures import ThreadPoolExecutor

        from chalicelib.errors import ApiError
        from chalicelib.services import tokens

        # Given exactly two unbound admin tokens
        second = api.post("/v1/tokens", {"description": "race admin"}).json
        keep = {second["id"], next(t["id"] for t in api.get("/v1/tokens").json["tokens"]
                                    if t["description"] == "test admin")}
        for token_id in unbound_admin_ids(api):
            if token_id not in keep:
                assert api.delete(f"/v1/tokens/{token_id}").status == 200
        assert set(unbound_admin_ids(api)) == keep

        # When both are revoked at the same time, many times over
        def revoke(token_id: str) -> str:
            try:
                tokens.revoke_token(token_id)
                return "revoked"
            except ApiError as exc:
                return exc.code

        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                outcomes = list(pool.map(revoke, sorted(keep)))
            # Then exactly one is revoked and one unbound admin token is left
            assert sorted(outcomes) == ["LastAdminToken", "revoked"], outcomes
            left = [t for t in tokens.list_tokens() if "*" in t.scopes and t.account is None]
            assert [t.id for t in left] in ([token_id] for token_id in keep)
        finally:
            # The session's admin token serves the other tests, whichever token won the race.
            tokens.register_token(admin_token, description="test admin", scopes=["*"])
