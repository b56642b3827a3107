"""EmailEngine's fields we accept and ignore: set aside, named in warnings, documented (pure; no server)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

import app  # noqa: F401 - registers every route
from chalicelib.api.openapi import openapi_document
from chalicelib.api.routing import ROUTES
from chalicelib.schemas import emailengine_fields as ee
from chalicelib.schemas.accounts import AccountCreate, AccountUpdate
from chalicelib.schemas.common import StrictModel

MIGRATION_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-emailengine.md"


def routes_with_ignored_fields() -> list[tuple[str, list[str]]]:
    found = []
    for spec in ROUTES:
        for model in (spec.body, spec.query):
            if model is not None and ee.ignored_paths(model):
                found.append((f"{spec.method} {spec.path}", ee.ignored_paths(model)))
    return found


def test_the_account_endpoints_and_the_others_named_in_the_brief_ignore_fields():
    endpoints = dict(routes_with_ignored_fields())
    assert {"POST /v1/account", "PUT /v1/account/{account}", "POST /v1/verifyAccount", "POST /v1/settings",
            "PUT /v1/account/{account}/message/{message}/move"} <= endpoints.keys()
    assert {"path", "notifyFrom", "copy", "logs", "webhooks", "proxy", "smtpEhloName", "locale", "tz",
            "imap.useAuthServer", "imap.resyncDelay"} <= set(endpoints["POST /v1/account"])


@pytest.mark.parametrize(("endpoint", "paths"), routes_with_ignored_fields())
def test_the_migration_guide_names_every_ignored_field_of_every_endpoint(endpoint, paths):
    # Given the guide's "Ignored fields" table, one row per endpoint
    rows = [line for line in MIGRATION_GUIDE.read_text().splitlines() if line.startswith(f"| `{endpoint}` |")]
    assert len(rows) == 1, f"no row for {endpoint} in {MIGRATION_GUIDE.name}"
    # Then the row names exactly the fields the models ignore
    assert re.findall(r"`([^`]+)`", rows[0].split("|")[2]) == paths


def test_the_guide_has_the_sections_other_parts_extend():
    headings = re.findall(r"^## (.+)$", MIGRATION_GUIDE.read_text(), flags=re.MULTILINE)
    assert {"Accounts", "Ignored fields", "Events"} <= set(headings)


def test_ignored_fields_are_set_aside_unread_and_remembered():
    body = {"email": "a@example.com", "verify": False, "path": ["*"], "tz": "Europe/Tallinn",
            "imap": {"host": "h.example", "port": 993, "auth": {"user": "u", "pass": "p"}, "resyncDelay": "any"}}
    model = AccountCreate.model_validate(body)
    assert "path" not in model.model_fields_set and model.imap is not None
    assert "resyncDelay" not in model.imap.model_fields_set
    assert ee.ignored_field_warnings(model) == [
        {"field": "path", "reason": ee.IGNORED_REASON}, {"field": "tz", "reason": ee.IGNORED_REASON},
        {"field": "imap.resyncDelay", "reason": ee.IGNORED_REASON}]


def test_an_update_with_only_ignored_fields_changes_nothing():
    model = AccountUpdate.model_validate({"imap": {"partial": True}, "logs": True})
    assert model.model_fields_set == {"imap"} and model.imap is not None and model.imap.model_fields_set == set()


def test_unknown_fields_are_still_refused_at_every_depth():
    with pytest.raises(ValidationError) as refused:
        AccountCreate.model_validate({"email": "a@example.com", "pathh": ["*"],
                                      "imap": {"host": "h.example", "port": 993, "auth": {"user": "u", "pass": "p"},
                                               "resyncDelai": 1}})
    assert {(e["loc"], e["type"]) for e in refused.value.errors()} == {
        (("pathh",), "extra_forbidden"), (("imap", "resyncDelai"), "extra_forbidden")}


def test_a_field_cannot_be_both_real_and_ignored():
    with pytest.raises(TypeError, match="real fields"):
        class Both(StrictModel):
            emailengine_ignored: ClassVar[tuple[str, ...]] = ("proxy",)
            proxy: str | None = None


def test_the_document_lists_ignored_fields_and_the_warnings_of_the_answer():
    document = openapi_document()
    schemas = document["components"]["schemas"]
    assert schemas["AccountCreate"]["properties"]["notifyFrom"] == {"description": ee.IGNORED_DESCRIPTION}
    assert schemas["ImapSettings"]["properties"]["resyncDelay"] == {"description": ee.IGNORED_DESCRIPTION}
    answer = document["paths"]["/v1/account"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["allOf"][1]["properties"]["warnings"]["items"] == {"$ref": "#/components/schemas/FieldWarning"}
    # A route whose input ignores nothing documents no warnings
    plain = document["paths"]["/v1/tokens"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "allOf" not in plain


def test_the_document_requires_email_unless_a_login_name_is_an_address():
    schema = openapi_document()["components"]["schemas"]["AccountCreate"]
    assert "email" not in schema.get("required", [])
    imap_login = schema["anyOf"][1]["properties"]["imap"]["properties"]["auth"]
    pattern = re.compile(imap_login["properties"]["user"]["pattern"])
    # The document's pattern decides exactly when a login name stands in for email
    for user, derived in (("me@example.com", True), ("plainname", False), ("a@b@c", False)):
        assert bool(pattern.match(user)) == derived
        body = {"imap": {"host": "h.example", "port": 993, "auth": {"user": user, "pass": "p"}}, "verify": False}
        if derived:
            assert AccountCreate.model_validate(body).email == user
        else:
            with pytest.raises(ValidationError) as refused:
                AccountCreate.model_validate(body)
            assert [e["type"] for e in refused.value.errors()] == ["missing"]


def test_no_route_that_ignores_fields_has_warnings_of_its_own():
    # The router adds warnings as objects; a response model with its own warnings (lists of
    # text, e.g. a send's) must not take ignored fields until the two are one shape.
    for spec in ROUTES:
        ignores = any(model is not None and ee.ignores_anything(model) for model in (spec.body, spec.query))
        if ignores and spec.response is not None:
            assert "warnings" not in spec.response.model_fields, f"{spec.method} {spec.path}"
