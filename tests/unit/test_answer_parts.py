"""Packing an Idempotency-Key answer too large for its record into parts and back (pure)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.store.answer_parts import INLINE_BYTES, REFERENCE_KEY, TornAnswerError, pack, reference_of, unpack


def large_answer(size: int = 2 * INLINE_BYTES) -> dict:
    # Random hex compresses to about half: still above the inline limit.
    return {"status": 200, "body": {"raw": random.Random(3).randbytes(size).hex(), "queueId": "q1"}}


def parts_of(packed) -> list[bytes | None]:
    return list(packed.parts)


def test_a_small_answer_stays_in_its_record_as_it_is():
    answer = {"status": 200, "body": {"messageId": "<a@b>", "queueId": "q1"}}
    packed = pack(answer)
    assert packed.held is answer and packed.parts == [] and packed.set_id is None
    assert reference_of(packed.held) is None


def test_a_large_answer_becomes_a_small_reference_and_parts_within_the_limit():
    packed = pack(large_answer(), part_bytes=50_000)
    assert list(packed.held) == [REFERENCE_KEY]
    assert len(str(packed.held)) < 200
    assert len(packed.parts) > 1 and all(len(part) <= 50_000 for part in packed.parts)
    set_id, count, _ = reference_of(packed.held)
    assert (set_id, count) == (packed.set_id, len(packed.parts))


@given(text=st.text(min_size=1, max_size=3000), inline_bytes=st.integers(min_value=1, max_value=500),
       part_bytes=st.integers(min_value=1, max_value=400))
def test_pack_then_unpack_gives_the_answer_back(text, inline_bytes, part_bytes):
    answer = {"status": 200, "body": {"raw": text, "n": [1, 2.5, None, True]}}
    packed = pack(answer, inline_bytes=inline_bytes, part_bytes=part_bytes)
    reference = reference_of(packed.held)
    if reference is None:
        assert packed.held == answer
    else:
        assert unpack(reference[2], parts_of(packed)) == answer


def test_every_packing_has_its_own_set_so_two_runs_of_a_key_never_mix():
    assert pack(large_answer()).set_id != pack(large_answer()).set_id


def test_a_missing_part_is_torn_not_a_shorter_answer():
    packed = pack(large_answer(), part_bytes=20_000)
    parts = parts_of(packed)
    parts[1] = None
    with pytest.raises(TornAnswerError, match="missing"):
        unpack(reference_of(packed.held)[2], parts)


def test_a_part_of_another_run_is_torn():
    first, second = pack(large_answer(), part_bytes=20_000), pack(large_answer(3 * INLINE_BYTES), part_bytes=20_000)
    mixed = [first.parts[0], *second.parts[1:len(first.parts)]]
    with pytest.raises(TornAnswerError, match="digest"):
        unpack(reference_of(first.held)[2], mixed)


@pytest.mark.parametrize("reference", [{"set": "s", "count": 0, "sha256": "d"}, {"set": 1, "count": 1, "sha256": "d"},
                                       {"count": 1, "sha256": "d"}])
def test_a_malformed_reference_is_torn(reference):
    with pytest.raises(TornAnswerError):
        reference_of({REFERENCE_KEY: reference})
