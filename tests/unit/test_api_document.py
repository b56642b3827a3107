"""The OpenAPI document and the validating models say the same thing (what the fuzzing gate relies on)."""

from __future__ import annotations

import base64
import json
import re
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

import app  # noqa: F401 - registers every route
from chalicelib.api.openapi import openapi_document
from chalicelib.api.routing import json_response, parse_body, parse_query
from chalicelib.errors import ValidationError as ApiValidationError
from chalicelib.schemas.accounts import AccountUpdate
from chalicelib.schemas.mailboxes import MailboxCreate, MailboxOut
from chalicelib.schemas.messages import MessageUpload
from chalicelib.schemas.sending import OutboxListQuery
from chalicelib.schemas.webhooks import DeliveryListQuery, ReplayRequest
from chalicelib.webhooks.signing import SECRET_PATTERN, parse_secret


def operation(method: str, path: str) -> dict:
    return openapi_document()["paths"][path][method]


@pytest.mark.parametrize("size", range(70))
def test_the_documented_secret_pattern_accepts_exactly_what_the_validator_accepts(size):
    for secret in ("whsec_" + base64.b64encode(bytes(range(size))).decode(),
                   "whsec_" + base64.b64encode(bytes(range(size))).decode().rstrip("=")):
        try:
            parse_secret(secret)
            accepted = True
        except ValueError:
            accepted = False
        assert bool(re.match(SECRET_PATTERN, secret)) == accepted, secret


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-1", "", "tomorrow"])
def test_a_date_must_be_iso_text_as_documented(value):
    # Given a number where the document says format: date-time (pydantic alone reads it as a Unix time)
    with pytest.raises(ValidationError):
        DeliveryListQuery.model_validate({"since": value})
    with pytest.raises(ValidationError):
        ReplayRequest.model_validate({"since": 1700000000})


def test_iso_dates_are_accepted():
    assert DeliveryListQuery.model_validate({"since": "2026-12-06T10:00:00Z"}).since.year == 2026
    assert ReplayRequest.model_validate({"since": "2026-12-06T10:00:00+01:00"}).since.hour == 10


def test_a_body_is_documented_as_required_only_when_an_empty_one_is_refused():
    # The router reads a missing body as {}: valid when every field is optional
    assert operation("post", "/v1/settings")["requestBody"]["required"] is False
    assert operation("put", "/v1/account/{account}")["requestBody"]["required"] is False
    assert operation("post", "/v1/account")["requestBody"]["required"] is True


def test_schema_valid_refusals_are_documented_as_409_and_422():
    assert "409" in operation("delete", "/v1/account/{account}/mailbox")["responses"]  # INBOX
    assert "422" in operation("get", "/v1/account/{account}/message/{message}")["responses"]  # id not ours
    assert "422" in operation("post", "/v1/account")["responses"]  # settings that do not log in
    assert "503" in operation("get", "/v1/account/{account}/messages")["responses"]  # [INUSE]


def test_the_outbox_account_filter_is_an_account_id():
    # An empty filter reached the store as an empty key (a 500); the document now says what an id is
    with pytest.raises(ValidationError):
        OutboxListQuery.model_validate({"account": ""})
    assert "pattern" in str(openapi_document()["paths"]["/v1/outbox"]["get"]["parameters"])


@pytest.mark.parametrize(("body", "status"), [
    ({"path": "INBOX", "flags": "not-a-list"}, 400),          # contradicts the document's types
    ({"path": "INBOX", "unknown": 1}, 400),                   # a field the document does not have
    ({"path": "INBOX", "subject": "no sender"}, 422),         # "from unless raw": a validator's own rule
    ({"path": "INBOX\x07", "raw": "eA=="}, 422),              # control characters in a mailbox path
])
def test_validation_answers_400_for_the_document_and_422_for_rules_beyond_it(body, status):
    request = SimpleNamespace(raw_body=json.dumps(body).encode())  # all parse_body reads of a request
    with pytest.raises(ApiValidationError) as refused:
        parse_body(request, MessageUpload)
    assert refused.value.status == status


@pytest.mark.parametrize(("path", "status"), [
    (["Projects", "bell\x07"], 422),  # segments: only the segment's own error, no "not a string"
    ("bell\x07", 422),
    (5, 400),                          # neither a string nor a list: contradicts the document
])
def test_a_mailbox_path_is_refused_for_the_form_that_was_sent(path, status):
    request = SimpleNamespace(raw_body=json.dumps({"path": path}).encode())
    with pytest.raises(ApiValidationError) as refused:
        parse_body(request, MailboxCreate)
    assert refused.value.status == status


def test_nullable_response_fields_are_optional_since_responses_leave_out_nulls():
    # Given a mailbox without a parent (parentPath None), serialized as the router does
    schemas = openapi_document()["components"]["schemas"]
    sent = json.loads(json_response(MailboxOut(path="INBOX", name="INBOX", delimiter="/", parentPath=None,
                                               subscribed=True)).body)
    # Then every field the document requires is in the body
    assert set(schemas["MailboxOut"]["required"]) <= set(sent)


@pytest.mark.parametrize("body", [{"verify": 0}, {"verify": "true"}, {"imap": {"port": "993"}}])
def test_a_body_with_json_types_other_than_documented_is_a_400(body):
    # Given a value pydantic would coerce in lax mode (0 for false, "993" for 993), which the document forbids
    request = SimpleNamespace(raw_body=json.dumps(body).encode())
    with pytest.raises(ApiValidationError) as refused:
        parse_body(request, AccountUpdate)
    assert refused.value.status == 400


def test_query_parameters_are_still_read_from_text():
    request = SimpleNamespace(query_params={"since": "2026-12-06T10:00:00Z", "pageSize": "10"})
    assert parse_query(request, DeliveryListQuery).pageSize == 10


def test_a_json_number_with_a_zero_fraction_is_an_integer_as_json_schema_says():
    request = SimpleNamespace(raw_body=b'{"imap": {"port": 993.0}}')
    assert parse_body(request, AccountUpdate).imap.port == 993


def test_a_queued_send_is_documented():
    assert "202" in operation("post", "/v1/account/{account}/submit")["responses"]
    assert "202" in operation("post", "/v1/account/{account}/message/{message}/submit")["responses"]
