"""Cutting a checkpoint blob into item-sized parts and joining them back (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.store.checkpoint_parts import PART_BYTES, TornCheckpointError, join_parts, split_blob


def test_a_blob_within_one_item_is_one_part():
    assert split_blob(b"x" * PART_BYTES) == [b"x" * PART_BYTES]
    assert split_blob(b"") == [b""]


def test_a_larger_blob_is_cut_into_parts_of_at_most_the_limit():
    parts = split_blob(b"a" * 10 + b"b" * 10 + b"c" * 3, part_bytes=10)
    assert parts == [b"a" * 10, b"b" * 10, b"c" * 3]


@given(blob=st.binary(max_size=200), part_bytes=st.integers(min_value=1, max_value=50))
def test_split_then_join_gives_the_blob_back(blob, part_bytes):
    head, *rest = split_blob(blob, part_bytes)
    parts = {number: (4, data) for number, data in enumerate(rest, start=1)}
    assert join_parts(head, 4, 1 + len(rest), parts) == blob


def test_a_missing_part_is_torn_not_a_shorter_blob():
    with pytest.raises(TornCheckpointError):
        join_parts(b"head", 3, 3, {1: (3, b"one")})


def test_a_part_of_another_revision_is_torn():
    with pytest.raises(TornCheckpointError):
        join_parts(b"head", 3, 2, {1: (2, b"old")})


def test_parts_beyond_the_count_are_leftovers_and_ignored():
    assert join_parts(b"head", 3, 2, {1: (3, b"+one"), 2: (2, b"old")}) == b"head+one"
