"""Bracketed query keys read into the object they spell (pure)."""

from __future__ import annotations

import pytest

from chalicelib.api.query_brackets import nest_bracketed
from chalicelib.errors import ValidationError


@pytest.mark.parametrize(("params", "nested"), [
    ({"search[from]": "ann@example.com", "path": "INBOX"},
     {"search": {"from": "ann@example.com"}, "path": "INBOX"}),
    ({"search[header][X-Foo]": "bar", "search[header][List-Id]": "", "search[subject]": "a b"},
     {"search": {"header": {"X-Foo": "bar", "List-Id": ""}, "subject": "a b"}}),
    ({"searching": "x", "other[a]": "1"}, {"searching": "x", "other[a]": "1"}),  # not the root: as given
    # a header name runs to the last "]" (RFC 5322 allows brackets in it); unknown names are the model's
    ({"search[header][X[1]]": "v", "search[]": "e"}, {"search": {"header": {"X[1]": "v"}, "": "e"}}),
    ({"search[a][b][c]": "v"}, {"search": {"a": {"b][c": "v"}}}),
    ({}, {}),
])
def test_keys_nest_and_others_stay(params, nested):
    assert nest_bracketed(params, {"search"}) == nested


@pytest.mark.parametrize("key", [
    "search", "search[", "search[from", "search[from]x", "search[[a]]", "search]a[", "search[a][b",
])
def test_a_malformed_key_is_a_400_naming_it(key):
    with pytest.raises(ValidationError) as raised:
        nest_bracketed({key: "x"}, {"search"})
    assert (raised.value.status, raised.value.code) == (400, "InvalidQueryKey")
    assert list(raised.value.details) == [f"query.{key}"]


@pytest.mark.parametrize("params", [
    {"search[header]": "x", "search[header][X-A]": "y"},
    {"search[header][X-A]": "y", "search[header]": "x"},
])
def test_a_name_cannot_be_both_a_value_and_an_object(params):
    with pytest.raises(ValidationError, match="both a value and an object"):
        nest_bracketed(params, {"search"})
