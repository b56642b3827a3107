"""UidSet: range algebra, IMAP sequence-set syntax and the compact checkpoint encoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.sync.uidset import UidSet

uid_lists = st.lists(st.integers(min_value=1, max_value=300), max_size=80)


@pytest.mark.parametrize(("uids", "imap"), [
    ([], ""),
    ([7], "7"),
    ([1, 2, 3, 5, 7, 8], "1:3,5,7:8"),
    ([10, 9, 9, 8], "8:10"),
])
def test_given_uids_when_formatted_then_imap_sequence_set(uids, imap):
    assert UidSet(uids).to_imap() == imap
    assert UidSet.parse_imap(imap) == UidSet(uids)


def test_given_a_server_range_written_high_to_low_when_parsed_then_it_is_normalised():
    assert UidSet.parse_imap(b"9:7,3") == UidSet([3, 7, 8, 9])


def test_given_touching_ranges_when_built_then_they_merge():
    assert UidSet.from_ranges([(1, 3), (4, 6), (8, 8)]).ranges == ((1, 6), (8, 8))


def test_given_uid_zero_when_built_then_rejected():
    with pytest.raises(ValueError):
        UidSet.from_ranges([(0, 2)])


@given(uid_lists, uid_lists)
def test_set_algebra_matches_python_sets(a, b):
    left, right = UidSet(a), UidSet(b)
    assert set(left | right) == set(a) | set(b)
    assert set(left & right) == set(a) & set(b)
    assert set(left - right) == set(a) - set(b)
    assert len(left) == len(set(a))
    assert all((uid in left) == (uid in set(a)) for uid in range(0, 302))


@given(uid_lists, st.integers(min_value=1, max_value=301))
def test_at_least_keeps_only_uids_from_the_bound(a, bound):
    assert set(UidSet(a).at_least(bound)) == {uid for uid in a if uid >= bound}


@given(uid_lists)
def test_encoding_round_trips(a):
    uids = UidSet(a)
    assert UidSet.decode(uids.encode()) == uids
    assert UidSet.parse_imap(uids.to_imap()) == uids


def test_given_a_contiguous_100k_mailbox_when_encoded_then_a_few_bytes():
    assert len(UidSet.span(1, 100_000).encode()) <= 6
