"""bounded_chunks: the count and size bounds of batched AWS calls."""

from chalicelib.chunking import bounded_chunks


def test_chunks_keep_order_and_respect_both_bounds():
    sizes = [4, 4, 4, 1, 1, 1, 1, 9, 2]
    chunks = list(bounded_chunks(sizes, max_count=3, max_bytes=8, size_of=lambda size: size))
    assert chunks == [[4, 4], [4, 1, 1], [1, 1], [9], [2]]  # 9 alone: over the size bound by itself
    assert [size for chunk in chunks for size in chunk] == sizes


def test_nothing_in_nothing_out():
    assert list(bounded_chunks([], max_count=10, max_bytes=100, size_of=len)) == []


def test_an_item_standing_for_several_counts_as_several_and_is_never_split():
    # A checkpoint of three items (head + two parts) must share a transaction whole.
    groups = [["a"], ["b1", "b2", "b3"], ["c"], ["d1", "d2"]]
    chunks = list(bounded_chunks(groups, max_count=4, max_bytes=100, size_of=lambda _: 1, count_of=len))
    assert chunks == [[["a"], ["b1", "b2", "b3"]], [["c"], ["d1", "d2"]]]
