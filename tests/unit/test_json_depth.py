"""The nesting bound applied to request bodies before the JSON parser recurses."""

from __future__ import annotations

import time

import pytest

from chalicelib.api.json_depth import MAX_JSON_DEPTH, JsonTooDeepError, check_json_depth


@pytest.mark.parametrize("raw", [
    b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH,
    b'{"a":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH,
    b'{"text": "' + b"[" * 10_000 + b'"}',          # brackets inside a string are text
    b"[" + b'"\\"[[[[", ' * 1000 + b"1]",           # so are brackets after an escaped quote
    b"[" + b"[1]," * 10_000 + b"1]",                 # wide is fine, only deep is not
])
def test_bodies_within_the_limit_pass(raw):
    check_json_depth(raw)


@pytest.mark.parametrize("raw", [
    b"[" * (MAX_JSON_DEPTH + 1),
    b'{"a":' * 100_000,
    b'[{"x": "]]]", "y": ' * MAX_JSON_DEPTH,
])
def test_bodies_deeper_than_the_limit_are_refused(raw):
    with pytest.raises(JsonTooDeepError, match=str(MAX_JSON_DEPTH)):
        check_json_depth(raw)


@pytest.mark.parametrize("raw", [
    b'["' + b"a[" * 500_000,                           # an unterminated string (full of brackets)
    b'["' + b'\\"[' * 300_000,                       # one made of escaped quotes
    b"[]" * 100 + b'["' + b'"' * 1_000_000 + b"]",     # a million quotes
])
def test_the_scan_stays_linear_on_hostile_strings(raw):
    # A regex that backtracks (or rescans from every quote) would take minutes here
    started = time.monotonic()
    check_json_depth(raw)
    assert time.monotonic() - started < 2
